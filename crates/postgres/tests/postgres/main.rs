//! Tests of the PostgreSQL adapters against a real, throwaway PostgreSQL cluster: one binary,
//! one module per concern. The repository tests are the in-memory adapter's behaviour tests,
//! run here against `PgRepository`; the other modules cover what only a real database shows
//! (races between transactions, constraints, several processes, the embedded cluster).
//!
//! The cluster is started once per binary from the machine's PostgreSQL binaries; every test
//! gets a database of its own. If the cluster cannot start, every test fails: none is skipped.

mod accounts;
mod assets;
mod cluster;
mod concurrency;
mod embedded;
mod jobs;
mod locks;
mod projects;
mod purges;
mod support;
mod uploads;
