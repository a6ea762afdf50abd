//! Contract rules: assets.
