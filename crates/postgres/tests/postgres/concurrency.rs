//! What only a real database shows: transactions racing each other, constraints holding even
//! when the code above them would not, the pool's and the server's timeouts.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use roughy_app::ports::{AccountRepo, AssetRepo, HealthCheck, JobOutcome, JobRepo, RepoError};
use roughy_domain::{AssetState, LedgerKind};
use roughy_postgres::{PgConfig, PgRepository};
use time::Duration as Span;

use crate::cluster::{fresh_url, test_config};
use crate::support::{at, minutes, World};

async fn world_at(url: &str) -> World {
    World::over(
        PgRepository::connect(&test_config(url.to_owned()))
            .await
            .expect("connects"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_claim_completed_twice_at_once_charges_once() {
    let w = World::new().await;
    for _ in 0..10 {
        let account = w.account().await;
        w.repo.top_up(&account, 100, at(0)).await.unwrap();
        let project = w.project(&account, at(0)).await;
        let asset = w.processing(&account, &project, at(1)).await;
        let job = w
            .repo
            .claim_job(at(2), Span::minutes(1))
            .await
            .unwrap()
            .unwrap();

        // The same claim settled by two tasks at once (a retried completion, say).
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (w, job, barrier) = (w.clone(), job.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    let outcome = JobOutcome::Measured {
                        duration: minutes(3),
                        format: None,
                    };
                    w.repo.complete_job(&job, &outcome, at(3)).await.unwrap()
                })
            })
            .collect();
        let mut settled = Vec::new();
        for racer in racers {
            settled.extend(racer.await.unwrap());
        }
        assert_eq!(settled, vec![AssetState::Ready], "exactly one settlement");
        let charges: Vec<_> = w
            .ledger(&account)
            .await
            .into_iter()
            .filter(|e| e.kind == LedgerKind::AssetCharge)
            .collect();
        assert_eq!(charges.len(), 1);
        assert_eq!(charges[0].asset_id.as_ref(), Some(&asset.id));
        assert_eq!(w.repo.balance(&account).await.unwrap(), 97);
        w.assert_balance_matches_ledger(&account).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_in_two_processes_never_get_the_same_job() {
    let url = fresh_url().await;
    let (a, b) = (world_at(&url).await, world_at(&url).await);
    let account = a.account().await;
    let project = a.project(&account, at(0)).await;
    let mut queued = HashSet::new();
    for i in 0..12 {
        queued.insert(a.processing(&account, &project, at(i)).await.id);
    }

    let barrier = Arc::new(tokio::sync::Barrier::new(6));
    let workers: Vec<_> = (0..6)
        .map(|i| {
            let repo = if i % 2 == 0 {
                a.repo.clone()
            } else {
                b.repo.clone()
            };
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                let mut mine = Vec::new();
                while let Some(job) = repo.claim_job(at(100), Span::minutes(5)).await.unwrap() {
                    mine.push(job.asset.id);
                }
                mine
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    let distinct: HashSet<_> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), distinct.len(), "no job claimed twice");
    assert_eq!(distinct, queued, "every job claimed");
}

#[tokio::test]
async fn the_schema_refuses_a_second_charge_and_a_negative_balance_whatever_the_code_does() {
    let url = fresh_url().await;
    let w = world_at(&url).await;
    let account = w.account().await;
    w.repo.top_up(&account, 10, at(0)).await.unwrap();
    let project = w.project(&account, at(0)).await;
    let asset = w.processing(&account, &project, at(1)).await;
    assert_eq!(w.measure_next(at(2), minutes(2)).await, AssetState::Ready);

    let mut raw = AsyncPgConnection::establish(&url).await.unwrap();
    let second_charge = diesel::sql_query(
        "INSERT INTO ledger_entries (id, account_id, kind, amount, balance_after, asset_id, created_at) \
         VALUES ('led_again', $1, 'asset_charge', -2, 6, $2, now())",
    )
    .bind::<Text, _>(account.as_str())
    .bind::<Text, _>(asset.id.as_str())
    .execute(&mut raw)
    .await;
    let err = second_charge.expect_err("charged at most once, ever");
    assert!(err.to_string().contains("one_charge_per_asset"), "{err}");

    // Even after the asset is gone, its charge keeps it from being charged again.
    w.repo
        .delete_asset(&account, &asset.id, at(3))
        .await
        .unwrap();
    let after_delete = diesel::sql_query(
        "INSERT INTO ledger_entries (id, account_id, kind, amount, balance_after, asset_id, created_at) \
         VALUES ('led_again', $1, 'asset_charge', -2, 6, $2, now())",
    )
    .bind::<Text, _>(account.as_str())
    .bind::<Text, _>(asset.id.as_str())
    .execute(&mut raw)
    .await;
    assert!(after_delete.is_err());
    assert_eq!(
        w.ledger(&account).await.len(),
        2,
        "the history survives the asset"
    );

    let negative = diesel::sql_query("UPDATE accounts SET balance = -1 WHERE id = $1")
        .bind::<Text, _>(account.as_str())
        .execute(&mut raw)
        .await;
    assert!(negative.is_err(), "the balance never goes negative");
}

#[tokio::test]
async fn an_exhausted_pool_and_a_statement_timeout_are_unavailable_not_internal() {
    let url = fresh_url().await;
    let config = PgConfig {
        max_size: 1,
        wait_timeout: Duration::from_millis(200),
        statement_timeout: Duration::from_millis(500),
        ..PgConfig::new(url.clone())
    };
    let w = World::over(PgRepository::connect(&config).await.unwrap());
    let account = w.account().await;

    // Another session holds the account row: a top-up waits on it with the pool's only
    // connection.
    let mut raw = AsyncPgConnection::establish(&url).await.unwrap();
    diesel::sql_query("BEGIN").execute(&mut raw).await.unwrap();
    diesel::sql_query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
        .bind::<Text, _>(account.as_str())
        .execute(&mut raw)
        .await
        .unwrap();
    let repo = w.repo.clone();
    let waiting = tokio::spawn({
        let account = account.clone();
        async move { repo.top_up(&account, 5, at(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert!(
        matches!(
            w.repo.balance(&account).await,
            Err(RepoError::Unavailable(_))
        ),
        "pool exhausted → unavailable (503)"
    );
    assert!(
        matches!(waiting.await.unwrap(), Err(RepoError::Unavailable(_))),
        "statement timeout → unavailable (503)"
    );
    diesel::sql_query("ROLLBACK")
        .execute(&mut raw)
        .await
        .unwrap();

    // Nothing of the cancelled top-up stayed, and the pool works again.
    assert_eq!(w.repo.balance(&account).await.unwrap(), 0);
    assert_eq!(w.repo.check().await, Ok(()));
    assert_eq!(w.repo.name(), "postgres");
}

#[tokio::test]
async fn an_unreachable_database_fails_start_up_and_migrations_apply_once() {
    let bogus = PgConfig::new("postgres://roughy@%2Fnonexistent%2Fdir/roughy");
    assert!(PgRepository::connect(&bogus).await.is_err());

    // Several processes starting at once on one new database: the schema is made once.
    let url = fresh_url().await;
    let starts: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgRepository::connect(&test_config(url)).await.map(drop) })
        })
        .collect();
    for start in starts {
        start.await.unwrap().expect("each process starts");
    }
    let w = world_at(&url).await;
    let account = w.account().await;
    assert_eq!(w.repo.balance(&account).await.unwrap(), 0);
}
