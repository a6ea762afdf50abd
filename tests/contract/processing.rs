//! Contract rules: processing.
