//! Contract rules: interop.
