//! Contract rules: operations.
