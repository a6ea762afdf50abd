//! Idempotency keys: one claim per key at a time, the first response replayed, another
//! request refused, stale records taken over, expired ones forgotten.

use std::sync::Arc;

use roughy_app::ports::{Claim, IdempotencyKeys};
use roughy_domain::idempotency::{IN_FLIGHT_LEASE, KEY_TTL};
use roughy_domain::{ClaimId, Fingerprint, IdempotencyKey, StoredResponse};

use crate::support::{at, World};

fn key(raw: &str) -> IdempotencyKey {
    IdempotencyKey::parse(raw).expect("a valid key")
}

fn request(body: &str) -> Fingerprint {
    Fingerprint::of("POST /v1/assets", body.as_bytes())
}

fn created(id: &str) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![
            ("location".into(), format!("http://h/v1/uploads/{id}")),
            ("content-type".into(), "application/json".into()),
        ],
        body: format!("{{\"id\":\"{id}\"}}").into_bytes(),
    }
}

fn claimed(claim: Claim) -> ClaimId {
    match claim {
        Claim::Claimed(id) => id,
        other => panic!("expected a claim, got {other:?}"),
    }
}

#[tokio::test]
async fn a_key_runs_once_then_replays_its_first_response_and_refuses_other_requests() {
    let w = World::new().await;
    let account = w.account().await;
    let (k, body) = (key("create-1"), request("{}"));
    let claim = claimed(w.repo.claim_key(&account, &k, &body, at(0)).await.unwrap());
    // Still running: the same request waits, another is refused.
    assert_eq!(
        w.repo.claim_key(&account, &k, &body, at(1)).await.unwrap(),
        Claim::InFlight
    );
    let other = request("{\"size_bytes\":100}");
    assert_eq!(
        w.repo.claim_key(&account, &k, &other, at(1)).await.unwrap(),
        Claim::Reused
    );
    assert!(w
        .repo
        .complete_key(&account, &k, &claim, &created("a"))
        .await
        .unwrap());
    assert_eq!(
        w.repo.claim_key(&account, &k, &body, at(2)).await.unwrap(),
        Claim::Replay(created("a"))
    );
    assert_eq!(
        w.repo.claim_key(&account, &k, &other, at(2)).await.unwrap(),
        Claim::Reused
    );
    // A response with no headers and an empty body round-trips too.
    let bare = key("bare");
    let claim = claimed(
        w.repo
            .claim_key(&account, &bare, &body, at(0))
            .await
            .unwrap(),
    );
    let empty = StoredResponse {
        status: 204,
        headers: Vec::new(),
        body: Vec::new(),
    };
    assert!(w
        .repo
        .complete_key(&account, &bare, &claim, &empty)
        .await
        .unwrap());
    assert_eq!(
        w.repo
            .claim_key(&account, &bare, &body, at(1))
            .await
            .unwrap(),
        Claim::Replay(empty)
    );
}

#[tokio::test]
async fn keys_are_the_accounts_own() {
    let w = World::new().await;
    let (a, b) = (w.account().await, w.account().await);
    let k = key("shared-name");
    claimed(
        w.repo
            .claim_key(&a, &k, &request("{}"), at(0))
            .await
            .unwrap(),
    );
    claimed(
        w.repo
            .claim_key(&b, &k, &request("{\"x\":1}"), at(0))
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn a_released_key_is_claimed_again_and_only_its_claim_releases_or_completes_it() {
    let w = World::new().await;
    let account = w.account().await;
    let (k, body) = (key("retry-me"), request("{}"));
    let first = claimed(w.repo.claim_key(&account, &k, &body, at(0)).await.unwrap());
    // Another claim's release or completion changes nothing.
    let stranger = ClaimId::generate();
    w.repo.release_key(&account, &k, &stranger).await.unwrap();
    assert!(!w
        .repo
        .complete_key(&account, &k, &stranger, &created("x"))
        .await
        .unwrap());
    assert_eq!(
        w.repo.claim_key(&account, &k, &body, at(1)).await.unwrap(),
        Claim::InFlight
    );
    w.repo.release_key(&account, &k, &first).await.unwrap();
    // Free again, for any request.
    claimed(
        w.repo
            .claim_key(&account, &k, &request("{\"other\":true}"), at(2))
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn a_request_that_died_in_flight_is_taken_over_after_its_lease() {
    let w = World::new().await;
    let account = w.account().await;
    let (k, body) = (key("crashed"), request("{}"));
    let dead = claimed(w.repo.claim_key(&account, &k, &body, at(0)).await.unwrap());
    let lease = IN_FLIGHT_LEASE.whole_seconds();
    assert_eq!(
        w.repo
            .claim_key(&account, &k, &body, at(lease - 1))
            .await
            .unwrap(),
        Claim::InFlight
    );
    let retry = claimed(
        w.repo
            .claim_key(&account, &k, &body, at(lease))
            .await
            .unwrap(),
    );
    assert_ne!(retry, dead);
    // The dead request's late answer is not stored; the retry's is.
    assert!(!w
        .repo
        .complete_key(&account, &k, &dead, &created("dead"))
        .await
        .unwrap());
    assert!(w
        .repo
        .complete_key(&account, &k, &retry, &created("retry"))
        .await
        .unwrap());
    assert_eq!(
        w.repo
            .claim_key(&account, &k, &body, at(lease + 1))
            .await
            .unwrap(),
        Claim::Replay(created("retry"))
    );
}

#[tokio::test]
async fn keys_are_forgotten_after_24_hours() {
    let w = World::new().await;
    let account = w.account().await;
    let (old, young) = (key("old"), key("young"));
    let body = request("{}");
    let claim = claimed(
        w.repo
            .claim_key(&account, &old, &body, at(0))
            .await
            .unwrap(),
    );
    assert!(w
        .repo
        .complete_key(&account, &old, &claim, &created("a"))
        .await
        .unwrap());
    let claim = claimed(
        w.repo
            .claim_key(&account, &young, &body, at(10))
            .await
            .unwrap(),
    );
    assert!(w
        .repo
        .complete_key(&account, &young, &claim, &created("b"))
        .await
        .unwrap());
    let ttl = KEY_TTL.whole_seconds();
    assert_eq!(w.repo.purge_expired_keys(at(ttl - 1)).await.unwrap(), 0);
    assert_eq!(w.repo.purge_expired_keys(at(ttl)).await.unwrap(), 1);
    // The young one stays until its own expiry; past it, even unpurged, it binds no more.
    assert_eq!(
        w.repo
            .claim_key(&account, &young, &body, at(ttl))
            .await
            .unwrap(),
        Claim::Replay(created("b"))
    );
    claimed(
        w.repo
            .claim_key(&account, &young, &request("{\"new\":1}"), at(ttl + 10))
            .await
            .unwrap(),
    );
    claimed(
        w.repo
            .claim_key(&account, &old, &body, at(ttl))
            .await
            .unwrap(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_first_claims_of_one_key_exactly_one_wins() {
    let w = World::new().await;
    let account = w.account().await;
    let repo = Arc::new(w.repo.clone());
    for round in 0..5 {
        let k = key(&format!("race-{round}"));
        let claims = futures::future::join_all((0..8).map(|_| {
            let (repo, account, k) = (repo.clone(), account.clone(), k.clone());
            tokio::spawn(async move {
                repo.claim_key(&account, &k, &request("{}"), at(0))
                    .await
                    .unwrap()
            })
        }))
        .await;
        let claims: Vec<Claim> = claims.into_iter().map(|c| c.unwrap()).collect();
        let won = claims
            .iter()
            .filter(|c| matches!(c, Claim::Claimed(_)))
            .count();
        assert_eq!(won, 1, "round {round}: {claims:?}");
        assert!(
            claims
                .iter()
                .all(|c| matches!(c, Claim::Claimed(_) | Claim::InFlight)),
            "{claims:?}"
        );
    }
}
