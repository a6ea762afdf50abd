//! The embedded cluster's owner lock: one owner per directory, refused with the owner's pid
//! and the URL that shares the cluster, released when the owner stops it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failed expectation is the test's failure"
)]

use roughy_embedded_postgres::{EmbeddedError, EmbeddedOptions, EmbeddedPostgres};

const THROWAWAY: EmbeddedOptions = EmbeddedOptions { durable: false };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_owner_is_refused_with_the_owners_pid_and_url_until_the_first_stops() {
    let tmp = tempfile::Builder::new()
        .prefix("roughy-own-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("pg");
    let first = EmbeddedPostgres::start_with(&dir, THROWAWAY)
        .await
        .expect("the first start owns the cluster");

    // flock locks belong to an open file, not a process: a second start in this very process
    // is refused as another process would be.
    let refused = EmbeddedPostgres::start_with(&dir, THROWAWAY)
        .await
        .expect_err("the cluster has an owner");
    let EmbeddedError::InUse { owner, url, .. } = &refused else {
        panic!("expected InUse, got {refused}");
    };
    assert!(
        owner.starts_with(&format!("pid {}", std::process::id())),
        "{owner}"
    );
    assert_eq!(url, &first.url(), "the URL that shares the cluster");
    let message = refused.to_string();
    assert!(
        message.contains(&format!("DATABASE_URL={}", first.url())),
        "{message}"
    );
    // The refused start changed nothing: the cluster still answers.
    first
        .create_database("still_up")
        .await
        .expect("the owner's cluster still answers");

    first.stop().expect("stops");
    let again = EmbeddedPostgres::start_with(&dir, THROWAWAY)
        .await
        .expect("a stopped owner's lock is released");
    again.stop().expect("stops");
}
