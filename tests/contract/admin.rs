//! Contract rules: admin.
