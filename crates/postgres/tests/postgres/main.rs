//! Tests of the PostgreSQL adapters against a real, throwaway PostgreSQL cluster: one binary,
//! one module per concern. The repository modules are the shared conformance suite
//! (`crates/app/conformance`), run here against `PgRepository`; the other modules cover what
//! only a real database shows (races between transactions, constraints, several processes).
//!
//! One cluster, started from the machine's PostgreSQL binaries, serves the run; every test
//! gets a database of its own. If the cluster cannot start, every test fails: none is skipped.

#![allow(
    clippy::expect_used,
    reason = "integration test: a failed expectation is the test's failure"
)]

/// The adapter under test, for the conformance suite.
mod adapter {
    /// The repository type.
    pub type Repo = roughy_postgres::PgRepository;

    /// A migrated repository over a new database of the test run's cluster.
    pub async fn fresh_repository() -> Repo {
        crate::cluster::fresh_repository().await
    }

    /// Upload locks over the repository's database.
    pub fn locks_of(repo: &Repo) -> std::sync::Arc<dyn roughy_app::ports::UploadLocks> {
        std::sync::Arc::new(roughy_postgres::PgUploadLocks::new(repo))
    }
}

mod cluster;
mod concurrency;
mod locks;

#[path = "../../../app/conformance/accounts.rs"]
mod accounts;
#[path = "../../../app/conformance/assets.rs"]
mod assets;
#[path = "../../../app/conformance/backlog.rs"]
mod backlog;
#[path = "../../../app/conformance/idempotency.rs"]
mod idempotency;
#[path = "../../../app/conformance/jobs.rs"]
mod jobs;
#[path = "../../../app/conformance/projects.rs"]
mod projects;
#[path = "../../../app/conformance/purges.rs"]
mod purges;
#[path = "../../../app/conformance/support.rs"]
mod support;
#[path = "../../../app/conformance/uploads.rs"]
mod uploads;
#[path = "../../../app/conformance/webhooks.rs"]
mod webhooks;
