//! Tests of the in-memory adapters through their ports: one binary, one module per concern.
//! The repository modules are the shared conformance suite (`crates/app/conformance`).

#![allow(
    clippy::expect_used,
    reason = "integration test: a failed expectation is the test's failure"
)]

/// The adapter under test, for the conformance suite.
mod adapter {
    /// The repository type.
    pub type Repo = roughy_memory::MemoryRepository;

    /// A fresh, empty repository.
    pub async fn fresh_repository() -> Repo {
        Repo::new()
    }

    /// The upload locks the repository fences its writes with.
    pub fn locks_of(repo: &Repo) -> std::sync::Arc<dyn roughy_app::ports::UploadLocks> {
        std::sync::Arc::new(repo.locks())
    }
}

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
