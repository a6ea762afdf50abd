//! Contract rules: conventions.
