//! `make test` runs the benchmark once, tiny, so it cannot rot. Timing is never a test: only
//! that every scenario runs and every upload is stored exactly as sent. Under
//! `scripts/s3s-fs run` (as `make test` runs) that includes the S3 rows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failed expectation is the test's failure"
)]

use roughy_bench::s3::S3Env;
use roughy_bench::{run, Options, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_and_every_upload_verifies() {
    let options = Options::smoke();
    assert_eq!(
        options.runs_scenario(Scenario::S3),
        S3Env::present(),
        "the S3 rows run by default exactly when an S3 server's variables are set"
    );
    let report = run(&options).await.expect("the smoke run succeeds");
    assert!(!report.rows().is_empty());
    assert!(report.markdown().contains("| One 8 MiB PATCH |"));
    assert!(report.markdown().contains("| 8 MiB as 2 PATCHes of 5 MiB"));
    assert!(report
        .markdown()
        .contains("a new `curl` process per request |"));
    if S3Env::present() {
        assert!(report.markdown().contains("| S3: one 8 MiB PATCH |"));
    }
}
