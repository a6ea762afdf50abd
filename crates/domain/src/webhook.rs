//! Webhooks: endpoints an account registers to hear about its assets' state changes, the
//! events they receive, and the rules of a delivery (its signature, its retry schedule).
//!
//! An event is recorded in the same atomic step as the state change it reports, one delivery
//! per subscribed endpoint; a delivery is attempted until the receiver answers 2xx or the
//! retry window ([`RETRY_WINDOW`]) closes, each attempt waiting twice as long as the one
//! before ([`Delivery::after_attempt`]).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::asset::Asset;
use crate::ids::{random_base62, AccountId};

/// How long a delivery is retried after its event, before it is given up.
pub const RETRY_WINDOW: Duration = Duration::hours(24);

/// The longest wait between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::hours(1);

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// How many endpoints one account may register.
pub const MAX_WEBHOOKS_PER_ACCOUNT: usize = 20;

/// What happened to an asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// Measured and paid for (after processing, or activated by a top-up).
    AssetReady,
    /// Measured, waiting for credits.
    AssetPendingPayment,
    /// Preparation failed for good.
    AssetFailed,
    /// Deleted (with its project, or its upload terminated).
    AssetDeleted,
    /// Its upload stayed idle past its expiry; the asset is gone.
    UploadExpired,
    /// Its first chunk was not audio or video; the asset is gone.
    UploadRejected,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 6] = [
        Self::AssetReady,
        Self::AssetPendingPayment,
        Self::AssetFailed,
        Self::AssetDeleted,
        Self::UploadExpired,
        Self::UploadRejected,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AssetReady => "asset.ready",
            Self::AssetPendingPayment => "asset.pending_payment",
            Self::AssetFailed => "asset.failed",
            Self::AssetDeleted => "asset.deleted",
            Self::UploadExpired => "upload.expired",
            Self::UploadRejected => "upload.rejected",
        }
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// The event an asset's new state announces, if any (`ready`, `pending_payment`,
    /// `failed`).
    pub fn for_state(state: crate::AssetState) -> Option<Self> {
        match state {
            crate::AssetState::Ready => Some(Self::AssetReady),
            crate::AssetState::PendingPayment => Some(Self::AssetPendingPayment),
            crate::AssetState::Failed => Some(Self::AssetFailed),
            crate::AssetState::PendingUpload | crate::AssetState::Processing => None,
        }
    }
}

/// Why a webhook registration was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WebhookError {
    /// Not an absolute `http` or `https` URL without credentials, at most 2048 bytes.
    #[error("url must be an absolute http or https URL without credentials, at most 2048 bytes")]
    Url,
    /// No event, or one that does not exist.
    #[error("events must list one or more of: asset.ready, asset.pending_payment, asset.failed, asset.deleted, upload.expired, upload.rejected")]
    Events,
}

/// A receiver's URL: absolute `http`/`https`, a host, no user info, no whitespace or control
/// characters. Where it resolves to is checked by the transport, at registration and at
/// every connection.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Parses a URL a client registered.
    ///
    /// # Errors
    /// [`WebhookError::Url`] unless it has the shape above.
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))
            .ok_or(WebhookError::Url)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let ok = raw.len() <= MAX_URL_LEN
            && !host.is_empty()
            && !authority.contains('@')
            && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(raw.to_owned())).ok_or(WebhookError::Url)
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The events an endpoint subscribes to: one or more, each once, in wire order.
///
/// # Errors
/// [`WebhookError::Events`] when `raw` is empty or names an unknown event.
pub fn parse_events<'a>(
    raw: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<EventKind>, WebhookError> {
    let mut events = raw
        .into_iter()
        .map(|e| EventKind::parse(e).ok_or(WebhookError::Events))
        .collect::<Result<Vec<_>, _>>()?;
    events.sort_unstable();
    events.dedup();
    if events.is_empty() {
        return Err(WebhookError::Events);
    }
    Ok(events)
}

/// The secret an endpoint's deliveries are signed with (`whsec_…`), shown once at
/// registration. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// The prefix of every secret.
    pub const PREFIX: &'static str = "whsec_";

    /// A fresh random secret (190 bits).
    pub fn generate() -> Self {
        Self(format!("{}{}", Self::PREFIX, random_base62(32)))
    }

    /// Wraps a stored secret read back from a repository.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    /// The secret.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `Roughy-Signature` header of `body` sent at `t`: `t=<unix seconds>,v1=<hex
    /// HMAC-SHA256 of "<t>.<body>" keyed by the secret>`, as Stripe signs its webhooks, so a
    /// receiver can check the body and reject replays of an old one.
    pub fn sign(&self, t: OffsetDateTime, body: &[u8]) -> String {
        let t = t.unix_timestamp();
        format!("t={t},v1={}", hex::encode(self.mac(t, body)))
    }

    /// Whether `header` is this secret's signature of `body` (constant time).
    pub fn verify(&self, header: &str, body: &[u8]) -> bool {
        let mut t = None;
        let mut v1 = None;
        for part in header.split(',') {
            match part.split_once('=') {
                Some(("t", value)) => t = value.parse::<i64>().ok(),
                Some(("v1", value)) => v1 = hex::decode(value).ok(),
                _ => {}
            }
        }
        let (Some(t), Some(v1)) = (t, v1) else {
            return false;
        };
        let mut mac = self.keyed();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&v1).is_ok()
    }

    fn keyed(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        match Hmac::<Sha256>::new_from_slice(self.0.as_bytes()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        }
    }

    fn mac(&self, t: i64, body: &[u8]) -> Vec<u8> {
        let mut mac = self.keyed();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(whsec_…)")
    }
}

/// A registered endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: crate::WebhookId,
    /// The account whose assets it hears about.
    pub account_id: AccountId,
    /// Where deliveries are POSTed.
    pub url: WebhookUrl,
    /// What it subscribes to.
    pub events: Vec<EventKind>,
    /// What deliveries are signed with.
    pub secret: WebhookSecret,
    /// Registration time.
    pub created_at: OffsetDateTime,
}

impl Webhook {
    /// A new endpoint with a fresh secret.
    pub fn new(
        account_id: AccountId,
        url: WebhookUrl,
        events: Vec<EventKind>,
        created_at: OffsetDateTime,
    ) -> Self {
        Self {
            id: crate::WebhookId::generate(),
            account_id,
            url,
            events,
            secret: WebhookSecret::generate(),
            created_at,
        }
    }

    /// Whether it hears about `kind`.
    pub fn subscribes(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }
}

/// Something that happened to an asset, with the asset as it was right after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Its id (`evt_…`): the same in every delivery and retry of it, for receivers to dedupe.
    pub id: crate::EventId,
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub created_at: OffsetDateTime,
    /// The asset right after the change (right before, for a deletion).
    pub asset: Asset,
}

impl WebhookEvent {
    /// A new event about `asset`.
    pub fn new(kind: EventKind, asset: Asset, created_at: OffsetDateTime) -> Self {
        Self {
            id: crate::EventId::generate(),
            kind,
            created_at,
            asset,
        }
    }
}

/// Where a delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// The retry window closed without a 2xx.
    Failed,
}

impl DeliveryState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One attempt of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// When it started.
    pub at: OffsetDateTime,
    /// The receiver's status code, when it answered.
    pub status: Option<u16>,
    /// Why it did not answer (refused, timed out, …), when it did not.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

impl Attempt {
    /// Whether the receiver took the event (2xx).
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// An event's delivery to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Its id (`dlv_…`).
    pub id: crate::DeliveryId,
    /// The endpoint.
    pub webhook_id: crate::WebhookId,
    /// The event.
    pub event: WebhookEvent,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (meaningful while `pending`).
    pub next_attempt_at: OffsetDateTime,
}

impl Delivery {
    /// The first, immediately due, delivery of `event` to `webhook`.
    pub fn new(webhook: &Webhook, event: WebhookEvent) -> Self {
        Self {
            id: crate::DeliveryId::generate(),
            webhook_id: webhook.id.clone(),
            next_attempt_at: event.created_at,
            event,
            state: DeliveryState::Pending,
            attempts: 0,
        }
    }

    /// Records an attempt: `delivered` on a 2xx; otherwise the next attempt waits
    /// `first_delay` doubled for each attempt made before (at most [`MAX_RETRY_DELAY`]), and
    /// the delivery is `failed` when that would fall outside [`RETRY_WINDOW`] after the event.
    pub fn after_attempt(&mut self, attempt: &Attempt, first_delay: Duration) {
        self.attempts = self.attempts.saturating_add(1);
        if attempt.succeeded() {
            self.state = DeliveryState::Delivered;
            return;
        }
        let factor = 2_i32.saturating_pow(self.attempts.saturating_sub(1).min(30));
        let delay = first_delay
            .checked_mul(factor)
            .unwrap_or(MAX_RETRY_DELAY)
            .min(MAX_RETRY_DELAY);
        let next = attempt.at + delay;
        if next > self.event.created_at + RETRY_WINDOW {
            self.state = DeliveryState::Failed;
        } else {
            self.next_attempt_at = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProjectId, SizeBytes};
    use time::macros::datetime;

    fn asset() -> Asset {
        Asset::new(
            AccountId::generate(),
            ProjectId::generate(),
            SizeBytes::new(1_000).unwrap_or_else(|_| unreachable!()),
            None,
            datetime!(2026-01-01 00:00 UTC),
        )
    }

    fn webhook() -> Webhook {
        Webhook::new(
            AccountId::generate(),
            WebhookUrl::parse("https://example.com/hooks").unwrap_or_else(|_| unreachable!()),
            vec![EventKind::AssetReady],
            datetime!(2026-01-01 00:00 UTC),
        )
    }

    fn failed_at(at: OffsetDateTime) -> Attempt {
        Attempt {
            at,
            status: Some(500),
            error: None,
            duration_ms: 3,
        }
    }

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        for ok in [
            "https://example.com",
            "http://127.0.0.1:8080/hook?x=1",
            "https://[::1]:9/h",
        ] {
            assert!(WebhookUrl::parse(ok).is_ok(), "{ok}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        for bad in [
            "",
            "example.com",
            "ftp://example.com",
            "https://",
            "https://:80/",
            "https://user:pw@example.com/",
            "https://example.com/a b",
            "https://exa\u{0}mple.com",
            long.as_str(),
        ] {
            assert_eq!(WebhookUrl::parse(bad), Err(WebhookError::Url), "{bad:?}");
        }
    }

    #[test]
    fn events_are_known_deduplicated_and_not_empty() {
        assert_eq!(
            parse_events(["upload.rejected", "asset.ready", "asset.ready"]),
            Ok(vec![EventKind::AssetReady, EventKind::UploadRejected])
        );
        assert_eq!(parse_events([]), Err(WebhookError::Events));
        assert_eq!(
            parse_events(["asset.ready", "asset.created"]),
            Err(WebhookError::Events)
        );
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn a_signature_verifies_only_for_its_body_and_secret() {
        let secret = WebhookSecret::generate();
        let t = datetime!(2026-12-04 10:00 UTC);
        let header = secret.sign(t, b"{\"a\":1}");
        assert!(header.starts_with(&format!("t={},v1=", t.unix_timestamp())));
        assert!(secret.verify(&header, b"{\"a\":1}"));
        assert!(!secret.verify(&header, b"{\"a\":2}"));
        assert!(!WebhookSecret::generate().verify(&header, b"{\"a\":1}"));
        let other_time = header.replacen("t=", "t=1", 1);
        assert!(!secret.verify(&other_time, b"{\"a\":1}"));
        assert!(!secret.verify("v1=00", b"{\"a\":1}"));
    }

    #[test]
    fn a_signature_matches_an_independent_hmac() {
        // HMAC-SHA256(key = "whsec_test", "1.body"), computed with `openssl dgst -sha256 -hmac`.
        let secret = WebhookSecret::from_stored("whsec_test".to_owned());
        let header = secret.sign(
            OffsetDateTime::from_unix_timestamp(1).unwrap_or_else(|_| unreachable!()),
            b"body",
        );
        assert_eq!(
            header,
            "t=1,v1=3b4c94e586c86f0128010abc41d8fb1e507d439e0cb1908b00098a3f132e54ee"
        );
    }

    #[test]
    fn a_2xx_delivers_and_anything_else_backs_off_until_the_window_closes() {
        let event = WebhookEvent::new(
            EventKind::AssetReady,
            asset(),
            datetime!(2026-01-01 00:00 UTC),
        );
        let mut delivery = Delivery::new(&webhook(), event.clone());
        assert_eq!(delivery.next_attempt_at, event.created_at);
        let mut at = event.created_at;
        let mut waits = Vec::new();
        while delivery.state == DeliveryState::Pending {
            delivery.after_attempt(&failed_at(at), Duration::seconds(30));
            if delivery.state == DeliveryState::Pending {
                waits.push(delivery.next_attempt_at - at);
                at = delivery.next_attempt_at;
            }
        }
        assert_eq!(delivery.state, DeliveryState::Failed);
        assert_eq!(
            &waits[..4],
            &[
                Duration::seconds(30),
                Duration::seconds(60),
                Duration::seconds(120),
                Duration::seconds(240)
            ]
        );
        assert!(waits.iter().all(|w| *w <= MAX_RETRY_DELAY));
        assert!(at <= event.created_at + RETRY_WINDOW);
        assert!(at + MAX_RETRY_DELAY > event.created_at + RETRY_WINDOW);

        let mut ok = Delivery::new(&webhook(), event.clone());
        ok.after_attempt(&failed_at(event.created_at), Duration::seconds(30));
        ok.after_attempt(
            &Attempt {
                status: Some(204),
                ..failed_at(ok.next_attempt_at)
            },
            Duration::seconds(30),
        );
        assert_eq!((ok.state, ok.attempts), (DeliveryState::Delivered, 2));
    }
}
