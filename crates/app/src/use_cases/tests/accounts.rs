//! Top-ups, keys and authentication.

use roughy_domain::billing::MAX_TOP_UP;
use roughy_domain::{AccountId, ApiKeyId, ApiKeySecret, LedgerEntry};

use super::{Harness, NOW};
use crate::error::IngestError;
use crate::ports::{RepoError, TopUpOutcome};

#[tokio::test]
async fn top_up_outside_one_to_a_billion_credits_is_refused_without_touching_the_ledger() {
    for credits in [0, -1, MAX_TOP_UP + 1, i64::MAX] {
        let mut h = Harness::new();
        h.accounts.expect_top_up().never();

        let err = h
            .build()
            .top_up(&AccountId::generate(), credits)
            .await
            .expect_err("out of range");

        assert!(
            matches!(
                err,
                IngestError::Validation {
                    field: "credits",
                    ..
                }
            ),
            "{credits}: {err:?}"
        );
    }
}

#[tokio::test]
async fn top_up_accepts_both_bounds_and_credits_exactly_that_amount() {
    for credits in [1, MAX_TOP_UP] {
        let mut h = Harness::new();
        let account = AccountId::generate();
        let entry = LedgerEntry::top_up(account.clone(), credits, credits, NOW);
        let expected = TopUpOutcome {
            entry,
            activated: Vec::new(),
            charged: 0,
        };
        let (a, outcome) = (account.clone(), expected.clone());
        h.accounts
            .expect_top_up()
            .withf(move |acc, c, at| *acc == a && *c == credits && *at == NOW)
            .times(1)
            .returning(move |_, _, _| Ok(outcome.clone()));

        let got = h.build().top_up(&account, credits).await.expect("credited");

        assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn top_up_of_an_unknown_account_answers_not_found() {
    let mut h = Harness::new();
    h.accounts
        .expect_top_up()
        .times(1)
        .returning(|_, _, _| Err(RepoError::NotFound));

    let err = h
        .build()
        .top_up(&AccountId::generate(), 10)
        .await
        .expect_err("unknown");

    assert!(matches!(err, IngestError::NotFound), "{err:?}");
}

#[tokio::test]
async fn malformed_bearer_is_refused_without_a_lookup() {
    let mut h = Harness::new();
    h.accounts.expect_account_for_key().never();
    let ingest = h.build();

    for bearer in ["", "sk_", "pk_abc", "sk_abc/def"] {
        let err = ingest.authenticate(bearer).await.expect_err("malformed");
        assert!(
            matches!(err, IngestError::Unauthorized),
            "{bearer:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn bearer_is_looked_up_by_its_hash_only() {
    let mut h = Harness::new();
    let secret = ApiKeySecret::generate();
    let (hash, account) = (secret.hash(), AccountId::generate());
    let found = account.clone();
    h.accounts
        .expect_account_for_key()
        .withf(move |h| *h == hash)
        .times(1)
        .returning(move |_| Ok(Some(found.clone())));

    let got = h
        .build()
        .authenticate(secret.expose())
        .await
        .expect("known");

    assert_eq!(got, account);
}

#[tokio::test]
async fn unknown_or_revoked_bearer_is_unauthorized() {
    let mut h = Harness::new();
    h.accounts
        .expect_account_for_key()
        .times(1)
        .returning(|_| Ok(None));

    let err = h
        .build()
        .authenticate(ApiKeySecret::generate().expose())
        .await
        .expect_err("unknown");

    assert!(matches!(err, IngestError::Unauthorized), "{err:?}");
}

#[tokio::test]
async fn minted_key_is_stored_as_the_hash_of_the_secret_it_returns() {
    let mut h = Harness::new();
    let account = AccountId::generate();
    let a = account.clone();
    h.accounts
        .expect_create_api_key()
        .withf(move |key| key.account_id == a && key.created_at == NOW)
        .times(1)
        .returning(|_| Ok(()));

    let minted = h.build().mint_api_key(&account).await.expect("minted");

    assert_eq!(minted.key.hash, minted.secret.hash());
    assert!(minted.secret.expose().starts_with("sk_"));
}

#[tokio::test]
async fn revoking_an_unknown_key_answers_not_found() {
    let mut h = Harness::new();
    h.accounts
        .expect_revoke_api_key()
        .times(1)
        .returning(|_| Ok(false));

    let err = h
        .build()
        .revoke_api_key(&ApiKeyId::generate())
        .await
        .expect_err("unknown");

    assert!(matches!(err, IngestError::NotFound), "{err:?}");
}
