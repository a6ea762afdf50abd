//! Contract rules: downloads.
