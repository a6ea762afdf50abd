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

/// Events are written in the transaction of the change, so they commit or roll back with it:
/// a statement failing after the event's insert (a trigger refuses the tombstone a deletion
/// writes next) leaves neither the deletion nor its delivery; the event's own insert failing
/// (a trigger refuses deliveries) leaves the settlement undone, so no change goes unannounced.
#[tokio::test]
async fn a_change_and_its_webhook_delivery_commit_or_roll_back_together() {
    use roughy_app::ports::WebhookRepo;
    use roughy_domain::{EventKind, Webhook, WebhookUrl};

    let url = fresh_url().await;
    let w = world_at(&url).await;
    let account = w.account().await;
    let hook = Webhook::new(
        account.clone(),
        WebhookUrl::parse("https://hooks.example.com/").expect("url"),
        EventKind::ALL.to_vec(),
        at(0),
    );
    assert!(w.repo.create_webhook(&hook, 20).await.unwrap());
    let project = w.project(&account, at(0)).await;
    let doomed = w.asset(&account, &project, at(1)).await;
    w.repo.top_up(&account, 10, at(1)).await.unwrap();
    let measured_asset = w.processing(&account, &project, at(2)).await;

    let mut raw = AsyncPgConnection::establish(&url).await.unwrap();
    diesel::sql_query(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    let refuse = async |raw: &mut AsyncPgConnection, table: &str, on: bool| {
        let sql = if on {
            format!("CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse()")
        } else {
            format!("DROP TRIGGER refuse ON {table}")
        };
        diesel::sql_query(sql).execute(raw).await.unwrap();
    };

    // The deletion writes asset.deleted, then its tombstone is refused: all rolled back.
    refuse(&mut raw, "upload_tombstones", true).await;
    assert!(w
        .repo
        .delete_asset(&account, &doomed.id, at(3))
        .await
        .is_err());
    assert_eq!(w.get(&doomed).await, doomed, "the asset is still there");
    let page = w
        .repo
        .list_deliveries(&account, &hook.id, &crate::support::first(10))
        .await
        .unwrap()
        .expect("the caller's");
    assert!(page.items.is_empty(), "{page:?}");
    refuse(&mut raw, "upload_tombstones", false).await;

    // The settlement's event cannot be written: the settlement is rolled back too.
    refuse(&mut raw, "webhook_deliveries", true).await;
    let job = w
        .repo
        .claim_job(at(4), Span::minutes(1))
        .await
        .unwrap()
        .expect("due");
    let measured = JobOutcome::Measured {
        duration: minutes(1),
        format: None,
    };
    assert!(w.repo.complete_job(&job, &measured, at(4)).await.is_err());
    assert_eq!(w.get(&measured_asset).await.state, AssetState::Processing);
    assert_eq!(w.repo.balance(&account).await.unwrap(), 10, "not charged");
    refuse(&mut raw, "webhook_deliveries", false).await;

    // Without the triggers, the same changes commit with their events.
    w.repo
        .delete_asset(&account, &doomed.id, at(5))
        .await
        .unwrap();
    let job = w
        .repo
        .claim_job(at(100), Span::minutes(1))
        .await
        .unwrap()
        .expect("due again");
    assert_eq!(
        w.repo.complete_job(&job, &measured, at(100)).await.unwrap(),
        Some(AssetState::Ready)
    );
    let kinds: Vec<EventKind> = w
        .repo
        .claim_deliveries(at(200), Span::seconds(60), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.delivery.event.kind)
        .collect();
    assert_eq!(kinds, [EventKind::AssetDeleted, EventKind::AssetReady]);
}
