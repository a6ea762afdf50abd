//! Contract rules: auth.
