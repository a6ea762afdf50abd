//! Contract rules: uploads.
