//! `make test` runs the benchmark once, tiny, so it cannot rot. Timing is never a test: only
//! that every scenario runs and every upload is stored exactly as sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use roughy_bench::{run, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_and_every_upload_verifies() {
    let options = Options::smoke();
    let report = run(&options).await.expect("the smoke run succeeds");
    assert!(!report.rows().is_empty());
    assert!(report.markdown().contains("| One 8 MiB PATCH |"));
}
