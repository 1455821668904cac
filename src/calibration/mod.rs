//! Calibration against human QA: importing people's scores (`import`), the statistics of
//! agreement (`stats`), the report built from them (`report`) and its database queries
//! (`queries`). `callq calibrate` is in `commands::calibrate`.

pub mod import;
mod queries;
pub mod report;
pub mod stats;

pub use queries::HumanImportCounts;
