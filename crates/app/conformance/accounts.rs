//! Accounts, keys, top-ups with activation, the ledger.

use roughy_app::ports::{AccountRepo, AssetRepo, JobOutcome, JobRepo, ProjectRepo, RepoError};
use roughy_domain::{
    Account, AccountId, ApiKey, ApiKeyId, ApiKeySecret, AssetFailure, AssetState, LedgerKind,
};
use time::Duration;

use crate::support::{at, first, minutes, World};

fn key_for(account: &AccountId) -> (ApiKey, ApiKeySecret) {
    let secret = ApiKeySecret::generate();
    let key = ApiKey {
        id: ApiKeyId::generate(),
        account_id: account.clone(),
        hash: secret.hash(),
        created_at: at(0),
    };
    (key, secret)
}

#[tokio::test]
async fn accounts_are_stored_once_with_a_zero_balance() {
    let w = World::new().await;
    let account = Account {
        id: AccountId::generate(),
        name: Some("acme".into()),
        created_at: at(0),
    };
    w.repo.create_account(&account).await.unwrap();
    assert!(matches!(
        w.repo.create_account(&account).await,
        Err(RepoError::Conflict(_))
    ));
    assert_eq!(
        w.repo.get_account(&account.id).await.unwrap(),
        Some(account.clone())
    );
    assert_eq!(w.repo.balance(&account.id).await.unwrap(), 0);
    assert_eq!(
        w.repo.get_account(&AccountId::generate()).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn unknown_accounts_have_no_balance_and_take_no_top_up() {
    let w = World::new().await;
    let nobody = AccountId::generate();
    assert!(matches!(
        w.repo.balance(&nobody).await,
        Err(RepoError::NotFound)
    ));
    assert!(matches!(
        w.repo.top_up(&nobody, 5, at(1)).await,
        Err(RepoError::NotFound)
    ));
}

#[tokio::test]
async fn keys_authenticate_until_revoked() {
    let w = World::new().await;
    let account = w.account().await;
    let (key, secret) = key_for(&account);
    w.repo.create_api_key(&key).await.unwrap();
    assert_eq!(
        w.repo.account_for_key(&secret.hash()).await.unwrap(),
        Some(account)
    );

    assert!(w.repo.revoke_api_key(&key.id).await.unwrap());
    assert_eq!(w.repo.account_for_key(&secret.hash()).await.unwrap(), None);
    assert!(
        !w.repo.revoke_api_key(&key.id).await.unwrap(),
        "already revoked"
    );
    assert!(!w.repo.revoke_api_key(&ApiKeyId::generate()).await.unwrap());
    let (_, stranger) = key_for(&AccountId::generate());
    assert_eq!(
        w.repo.account_for_key(&stranger.hash()).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_key_needs_its_account() {
    let w = World::new().await;
    let (key, _) = key_for(&AccountId::generate());
    assert!(matches!(
        w.repo.create_api_key(&key).await,
        Err(RepoError::NotFound)
    ));
}

#[tokio::test]
async fn a_top_up_credits_and_writes_its_entry() {
    let w = World::new().await;
    let account = w.account().await;
    let outcome = w.repo.top_up(&account, 7, at(1)).await.unwrap();
    assert_eq!(outcome.entry.kind, LedgerKind::TopUp);
    assert_eq!(outcome.entry.amount, 7);
    assert_eq!(outcome.entry.balance_after, 7);
    assert_eq!(outcome.entry.asset_id, None);
    assert_eq!(outcome.entry.created_at, at(1));
    assert!(outcome.activated.is_empty());
    assert_eq!(w.repo.balance(&account).await.unwrap(), 7);
    assert_eq!(w.ledger(&account).await, vec![outcome.entry]);
}

#[tokio::test]
async fn a_top_up_activates_pending_assets_oldest_first_skipping_what_it_cannot_cover() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    // Created out of order, to show activation follows created_at, not insertion.
    let third = w.pending_payment(&account, &project, at(30), 2).await;
    let first_one = w.pending_payment(&account, &project, at(10), 4).await;
    let second = w.pending_payment(&account, &project, at(20), 5).await;
    // Another account's waiting asset is not this top-up's business.
    let other = w.account().await;
    let other_project = w.project(&other, at(0)).await;
    let foreign = w.pending_payment(&other, &other_project, at(5), 1).await;

    let outcome = w.repo.top_up(&account, 6, at(100)).await.unwrap();
    assert_eq!(
        outcome.activated,
        vec![first_one.id.clone(), third.id.clone()]
    );
    assert_eq!(outcome.entry.balance_after, 6);
    assert_eq!(outcome.charged, 4 + 2, "the two activations' charges");
    assert_eq!(w.get(&first_one).await.state, AssetState::Ready);
    assert_eq!(w.get(&second).await.state, AssetState::PendingPayment);
    assert_eq!(w.get(&third).await.state, AssetState::Ready);
    assert_eq!(w.get(&foreign).await.state, AssetState::PendingPayment);
    assert_eq!(w.repo.balance(&account).await.unwrap(), 0);

    let ledger = w.ledger(&account).await;
    let charges: Vec<_> = ledger
        .iter()
        .filter(|e| e.kind == LedgerKind::AssetCharge)
        .map(|e| {
            (
                e.asset_id.clone().unwrap(),
                e.amount,
                e.balance_after,
                e.created_at,
            )
        })
        .collect();
    // Newest first, and posted one microsecond apart after the top-up, in activation order.
    assert_eq!(
        charges,
        vec![
            (
                third.id.clone(),
                -2,
                0,
                at(100) + time::Duration::microseconds(2)
            ),
            (
                first_one.id.clone(),
                -4,
                2,
                at(100) + time::Duration::microseconds(1)
            )
        ]
    );
    assert_eq!(ledger[0].kind, LedgerKind::AssetCharge);
    assert_eq!(
        ledger[2].kind,
        LedgerKind::TopUp,
        "the top-up reads below its own charges"
    );
    w.assert_balance_matches_ledger(&account).await;

    // The next top-up covers the one that was skipped, and only it.
    let outcome = w.repo.top_up(&account, 5, at(200)).await.unwrap();
    assert_eq!(outcome.activated, vec![second.id.clone()]);
    assert_eq!(outcome.charged, 5);
    assert_eq!(w.get(&second).await.state, AssetState::Ready);
    assert_eq!(w.repo.balance(&account).await.unwrap(), 0);
    w.assert_balance_matches_ledger(&account).await;
    assert_eq!(w.repo.balance(&other).await.unwrap(), 0);
}

#[tokio::test]
async fn the_ledger_lists_newest_first_and_pages() {
    let w = World::new().await;
    let account = w.account().await;
    for (i, credits) in [3, 1, 4, 1, 5].into_iter().enumerate() {
        w.repo
            .top_up(&account, credits, at(i as i64))
            .await
            .unwrap();
    }
    let page = w.repo.list_ledger(&account, &first(3)).await.unwrap();
    let amounts: Vec<_> = page.items.iter().map(|e| e.amount).collect();
    assert_eq!(amounts, vec![5, 1, 4]);
    assert!(page.next_cursor.is_some());
    let all: Vec<_> = w.ledger(&account).await.iter().map(|e| e.amount).collect();
    assert_eq!(all, vec![5, 1, 4, 1, 3]);
    assert_eq!(w.repo.balance(&account).await.unwrap(), 14);
    w.assert_balance_matches_ledger(&account).await;

    let stranger = w.account().await;
    let page = w.repo.list_ledger(&stranger, &first(10)).await.unwrap();
    assert!(page.items.is_empty() && page.next_cursor.is_none());
}

#[tokio::test]
async fn the_balance_stays_the_ledger_sum_through_a_mixed_history() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let mut clock = 0;
    let mut tick = || {
        clock += 1;
        at(clock)
    };
    for round in 0..12_u64 {
        // Top-ups now and then, small enough that some charges must wait for the next one.
        if round % 2 == 0 {
            let outcome = w
                .repo
                .top_up(&account, (round % 3 + 1) as i64, tick())
                .await
                .unwrap();
            for activated in &outcome.activated {
                let asset = w
                    .repo
                    .get_asset(&account, activated)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(asset.state, AssetState::Ready);
            }
        }
        let asset = w.processing(&account, &project, tick()).await;
        match round % 4 {
            // Settled: debited when covered, else waiting for a later top-up.
            0 | 1 => {
                let state = w.measure_next(tick(), minutes(round % 5 + 1)).await;
                assert!(matches!(
                    state,
                    AssetState::Ready | AssetState::PendingPayment
                ));
            }
            // Failed: never charged.
            2 => {
                let job = w
                    .repo
                    .claim_job(tick(), Duration::minutes(1))
                    .await
                    .unwrap()
                    .unwrap();
                let failure = AssetFailure {
                    code: "media_unreadable".into(),
                    message: "unreadable".into(),
                };
                w.repo
                    .complete_job(&job, &JobOutcome::Failed(failure), tick())
                    .await
                    .unwrap();
            }
            // Deleted while queued: never charged.
            _ => {
                w.repo
                    .delete_asset(&account, &asset.id, tick())
                    .await
                    .unwrap();
            }
        }
        w.assert_balance_matches_ledger(&account).await;
    }
    // Deleting charged assets refunds nothing.
    let before = w.repo.balance(&account).await.unwrap();
    w.repo
        .delete_project(&account, &project, tick())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.repo.balance(&account).await.unwrap(), before);
    w.assert_balance_matches_ledger(&account).await;
}
