//! Use-case tests with mocked ports.
