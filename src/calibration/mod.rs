//! Calibration against human QA: importing people's scores (`import`), the statistics of
//! agreement (`stats`) and the report built from them (`report`). Its database queries are
//! in `store::calibration`; `callq calibrate` is in `commands::calibrate`.

pub mod import;
pub mod report;
pub mod stats;
