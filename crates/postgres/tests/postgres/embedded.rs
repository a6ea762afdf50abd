//! The embedded cluster: data survives a restart, a stale pid file does not stop the next
//! start, and the cluster listens on its socket only.

use std::fs;

use roughy_app::ports::AccountRepo;
use roughy_domain::{Account, AccountId};
use roughy_postgres::{EmbeddedOptions, EmbeddedPostgres, PgConfig, PgRepository};

use crate::support::at;

async fn start(dir: &std::path::Path) -> EmbeddedPostgres {
    EmbeddedPostgres::start_with(dir, EmbeddedOptions { durable: false })
        .await
        .unwrap_or_else(|e| panic!("the embedded cluster must start: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_cluster_keeps_its_data_and_survives_a_stale_pid_file() {
    let tmp = tempfile::Builder::new()
        .prefix("roughy-emb-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("pg");
    let account = Account {
        id: AccountId::generate(),
        name: Some("kept".into()),
        created_at: at(0),
    };

    let cluster = start(&dir).await;
    assert!(cluster.url().starts_with("postgres://roughy@%2F"));
    assert!(
        cluster.dir().join(".s.PGSQL.5432").exists(),
        "the socket is in the directory"
    );
    let settings = fs::read_to_string(cluster.dir().join("data/roughy.conf")).unwrap();
    assert!(settings.contains("listen_addresses = ''"), "no TCP port");
    let repo = PgRepository::connect(&PgConfig::new(cluster.url()))
        .await
        .unwrap();
    repo.create_account(&account).await.unwrap();
    drop(repo);
    cluster.stop().unwrap();
    assert!(!dir.join(".s.PGSQL.5432").exists(), "stopped");

    // What a crash of the machine leaves: a pid file naming no running server.
    fs::write(
        dir.join("data/postmaster.pid"),
        "999999\n/nowhere\n0\n5432\n\n\n",
    )
    .unwrap();

    let cluster = start(&dir).await;
    let repo = PgRepository::connect(&PgConfig::new(cluster.url()))
        .await
        .unwrap();
    assert_eq!(
        repo.get_account(&account.id).await.unwrap(),
        Some(account.clone()),
        "the data survived the restart"
    );
    drop(repo);

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
    let cluster = crate::cluster::cluster();
    for bad in ["", "Upper", "semi;colon", "quote\"", &"x".repeat(64)] {
        assert!(cluster.create_database(bad).await.is_err(), "{bad:?}");
    }
    cluster.create_database("twice").await.unwrap();
    cluster.create_database("twice").await.unwrap();
}
