//! Contract rules: tus_protocol.
