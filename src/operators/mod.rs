//! Everything about operators: matching T-Bank's names against the directory (`matching`),
//! reading the directory from a CSV file (`import`), and the directory's database queries
//! (`queries`: import, unknown operators). `callq operators` is in `commands::operators`.

pub mod import;
mod matching;
mod queries;

pub use matching::{Directory, normalize_name};
pub use queries::{ImportCounts, UnknownOperator};
