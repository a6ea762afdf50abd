//! Contract rules: projects.
