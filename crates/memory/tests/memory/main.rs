//! Tests of the in-memory adapters through their ports: one binary, one module per concern.

mod accounts;
mod assets;
mod jobs;
mod locks;
mod projects;
mod purges;
mod signal;
mod support;
mod uploads;
