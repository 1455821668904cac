//! Operator name normalisation and matching against the `operators` directory.
