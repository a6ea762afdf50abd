//! Contract rules: billing.
