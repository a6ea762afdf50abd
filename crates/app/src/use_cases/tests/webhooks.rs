//! Webhooks: registration checks the destination; a delivery round signs what it sends and
//! records each attempt with the state the domain's retry rule gives it.

use std::sync::{Arc, Mutex};

use roughy_domain::{
    AccountId, Asset, DeliveryState, EventKind, ProjectId, SizeBytes, Webhook, WebhookEvent,
    WebhookUrl,
};

use super::{Harness, NOW, WEBHOOK_LEASE, WEBHOOK_RETRY_DELAY};
use crate::error::IngestError;
use crate::ports::{ClaimedDelivery, DestinationRefused, PostOutcome};

fn webhook(account: &AccountId) -> Webhook {
    Webhook::new(
        account.clone(),
        WebhookUrl::parse("https://hooks.example.com/roughy").expect("url"),
        vec![EventKind::AssetReady],
        NOW,
    )
}

fn claimed(webhook: &Webhook) -> ClaimedDelivery {
    let asset = Asset::new(
        webhook.account_id.clone(),
        ProjectId::generate(),
        SizeBytes::new(1_000).expect("size"),
        None,
        NOW,
    );
    let event = WebhookEvent::new(EventKind::AssetReady, asset, NOW);
    ClaimedDelivery {
        delivery: roughy_domain::Delivery::new(webhook, event),
        url: webhook.url.clone(),
        secret: webhook.secret.clone(),
        lease: "lease-1".to_owned(),
    }
}

#[tokio::test]
async fn a_registration_is_stored_only_when_the_destination_is_allowed() {
    let account = AccountId::generate();
    let mut h = Harness::new();
    h.webhook_transport
        .expect_check_destination()
        .withf(|url| url.as_str() == "https://hooks.example.com/roughy")
        .times(1)
        .returning(|_| Ok(()));
    let owner = account.clone();
    h.webhooks
        .expect_create_webhook()
        .withf(move |w, max| {
            w.account_id == owner
                && w.events == [EventKind::AssetReady, EventKind::AssetFailed]
                && w.created_at == NOW
                && *max == 20
        })
        .times(1)
        .returning(|_, _| Ok(true));
    let created = h
        .build()
        .create_webhook(
            &account,
            "https://hooks.example.com/roughy",
            &["asset.ready".to_owned(), "asset.failed".to_owned()],
        )
        .await
        .expect("created");
    assert!(created.secret.expose().starts_with("whsec_"));

    let mut h = Harness::new();
    h.webhook_transport
        .expect_check_destination()
        .times(1)
        .returning(|_| {
            Err(DestinationRefused(
                "resolves to 10.0.0.7, a private address".into(),
            ))
        });
    let refused = h
        .build()
        .create_webhook(
            &account,
            "https://internal.example.com/",
            &["asset.ready".to_owned()],
        )
        .await;
    assert!(
        matches!(&refused, Err(IngestError::Validation { field: "url", message }) if message.contains("private")),
        "{refused:?}"
    );

    // Malformed input never reaches the transport (a mock without expectations fails on use).
    let h = Harness::new();
    let ingest = h.build();
    for (url, events) in [
        ("ftp://example.com", vec!["asset.ready".to_owned()]),
        ("https://example.com", vec![]),
        ("https://example.com", vec!["asset.created".to_owned()]),
    ] {
        assert!(matches!(
            ingest.create_webhook(&account, url, &events).await,
            Err(IngestError::Validation { .. })
        ));
    }
}

#[tokio::test]
async fn an_account_at_its_maximum_gets_too_many_webhooks() {
    let mut h = Harness::new();
    h.webhook_transport
        .expect_check_destination()
        .returning(|_| Ok(()));
    h.webhooks
        .expect_create_webhook()
        .times(1)
        .returning(|_, _| Ok(false));
    let result = h
        .build()
        .create_webhook(
            &AccountId::generate(),
            "https://example.com/h",
            &["asset.ready".to_owned()],
        )
        .await;
    assert!(matches!(
        result,
        Err(IngestError::TooManyWebhooks { limit: 20 })
    ));
}

/// Runs one delivery round over one claimed delivery whose receiver answers `outcome`; returns
/// the signature sent and what was recorded.
async fn round(
    outcome: PostOutcome,
) -> (
    ClaimedDelivery,
    String,
    roughy_domain::Attempt,
    roughy_domain::Delivery,
) {
    let hook = webhook(&AccountId::generate());
    let claim = claimed(&hook);
    let mut h = Harness::new();
    let handed = claim.clone();
    h.webhooks
        .expect_claim_deliveries()
        .withf(|now, lease, limit| *now == NOW && *lease == WEBHOOK_LEASE && *limit == 16)
        .times(1)
        .returning(move |_, _, _| Ok(vec![handed.clone()]));
    let sent = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&sent);
    let event_id = claim.delivery.event.id.clone();
    h.webhook_transport
        .expect_post()
        .withf(move |url, event, body, _| {
            url.as_str() == "https://hooks.example.com/roughy"
                && event.id == event_id
                && body == event_id.as_str().as_bytes()
        })
        .times(1)
        .returning(move |_, _, _, signature| {
            *seen.lock().expect("lock") = Some(signature.to_owned());
            outcome.clone()
        });
    let recorded = Arc::new(Mutex::new(None));
    let keep = Arc::clone(&recorded);
    h.webhooks
        .expect_record_attempt()
        .withf(|c, _, _| c.lease == "lease-1")
        .times(1)
        .returning(move |_, attempt, after| {
            *keep.lock().expect("lock") = Some((attempt.clone(), after.clone()));
            Ok(true)
        });
    assert_eq!(h.build().deliver_webhooks().await.expect("round"), 1);
    let signature = sent.lock().expect("lock").take().expect("sent");
    let (attempt, after) = recorded.lock().expect("lock").take().expect("recorded");
    (claim, signature, attempt, after)
}

#[tokio::test]
async fn a_2xx_is_delivered_and_the_signature_covers_the_body_sent() {
    let (claim, signature, attempt, after) = round(PostOutcome::Answered(204)).await;
    assert!(claim
        .secret
        .verify(&signature, claim.delivery.event.id.as_str().as_bytes()));
    assert!(signature.starts_with(&format!("t={},", NOW.unix_timestamp())));
    assert_eq!(
        (attempt.status, attempt.error, attempt.at),
        (Some(204), None, NOW)
    );
    assert_eq!((after.state, after.attempts), (DeliveryState::Delivered, 1));
}

#[tokio::test]
async fn a_500_or_no_answer_is_retried_after_the_configured_delay() {
    let (_, _, attempt, after) = round(PostOutcome::Answered(500)).await;
    assert_eq!(attempt.status, Some(500));
    assert_eq!(
        (after.state, after.attempts, after.next_attempt_at),
        (DeliveryState::Pending, 1, NOW + WEBHOOK_RETRY_DELAY)
    );

    let (_, _, attempt, after) = round(PostOutcome::Failed("connection refused".into())).await;
    assert_eq!(
        (attempt.status, attempt.error.as_deref()),
        (None, Some("connection refused"))
    );
    assert_eq!(after.state, DeliveryState::Pending);
}
