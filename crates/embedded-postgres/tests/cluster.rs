//! The embedded cluster: data survives a restart, a stale pid file does not stop the next
//! start, a cluster left running is adopted, and the cluster listens on its socket only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failed expectation is the test's failure"
)]

use std::fs;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use roughy_embedded_postgres::{EmbeddedOptions, EmbeddedPostgres};

async fn start(dir: &std::path::Path) -> EmbeddedPostgres {
    EmbeddedPostgres::start_with(dir, EmbeddedOptions { durable: false })
        .await
        .unwrap_or_else(|e| panic!("the embedded cluster must start: {e}"))
}

/// Runs `sql` on the service's database of `cluster`.
async fn execute(cluster: &EmbeddedPostgres, sql: &str) {
    let mut conn = AsyncPgConnection::establish(&cluster.url())
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", cluster.url()));
    conn.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("run {sql:?}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_cluster_keeps_its_data_and_survives_a_stale_pid_file() {
    let tmp = tempfile::Builder::new()
        .prefix("roughy-emb-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("pg");

    let cluster = start(&dir).await;
    assert!(cluster.url().starts_with("postgres://roughy@%2F"));
    assert!(
        cluster.dir().join(".s.PGSQL.5432").exists(),
        "the socket is in the directory"
    );
    let settings = fs::read_to_string(cluster.dir().join("data/roughy.conf")).unwrap();
    assert!(settings.contains("listen_addresses = ''"), "no TCP port");
    execute(
        &cluster,
        "CREATE TABLE kept (v text NOT NULL); INSERT INTO kept VALUES ('kept');",
    )
    .await;
    cluster.stop().unwrap();
    assert!(!dir.join(".s.PGSQL.5432").exists(), "stopped");

    // What a crash of the machine leaves: a pid file naming no running server.
    fs::write(
        dir.join("data/postmaster.pid"),
        "999999\n/nowhere\n0\n5432\n\n\n",
    )
    .unwrap();

    let cluster = start(&dir).await;
    // Fails the statement (and so the test) unless the row survived the restart.
    execute(
        &cluster,
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM kept WHERE v = 'kept') THEN \
         RAISE EXCEPTION 'the data did not survive the restart'; END IF; END $$;",
    )
    .await;

    // Starting again while it runs (a process killed with -9 left it running, and its owner
    // lock died with it) adopts it.
    let url = cluster.url();
    cluster.abandon();
    let adopted = start(&dir).await;
    assert_eq!(adopted.url(), url);
    drop(adopted);
    assert!(!dir.join(".s.PGSQL.5432").exists(), "stopped on drop");
}

#[tokio::test]
async fn database_names_are_checked() {
    let cluster = roughy_embedded_postgres::testing::cluster();
    for bad in ["", "Upper", "semi;colon", "quote\"", &"x".repeat(64)] {
        assert!(cluster.create_database(bad).await.is_err(), "{bad:?}");
    }
    cluster.create_database("twice").await.unwrap();
    cluster.create_database("twice").await.unwrap();
}
