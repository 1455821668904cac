//! Everything about operators: matching T-Bank's names against the directory (`matching`)
//! and reading the directory from a CSV file (`import`). The directory's database queries
//! (import, unknown operators) are in `store::operators`; `callq operators` is in
//! `commands::operators`.

pub mod import;
mod matching;

pub use matching::{Directory, normalize_name};
