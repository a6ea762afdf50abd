//! Webhooks: the endpoints and their delivery outbox, the transport that POSTs a delivery,
//! and the encoder of an event's body.
//!
//! Events are written by the repository methods that change an asset's state, in the same
//! atomic step as the change, one delivery per endpoint of the asset's account that
//! subscribes to the event (none when there is none): `JobRepo::complete_job` (`asset.ready`,
//! `asset.pending_payment`, `asset.failed`), `AccountRepo::top_up` (`asset.ready` for each
//! activated asset), `AssetRepo::delete_asset` and `ProjectRepo::delete_project`
//! (`asset.deleted`), `UploadRepo::discard_upload` (`upload.expired`, `upload.rejected`,
//! `asset.deleted` when terminated). A change that is refused or rolled back writes none.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use roughy_domain::{
    AccountId, Attempt, Delivery, Webhook, WebhookEvent, WebhookId, WebhookSecret, WebhookUrl,
};

use super::RepoError;
use crate::pagination::{Page, PageRequest};

#[cfg(test)]
use mockall::automock;

/// A delivery and its attempts, oldest attempt first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The delivery.
    pub delivery: Delivery,
    /// Its attempts.
    pub attempts: Vec<Attempt>,
}

/// A due delivery claimed by one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The delivery as claimed.
    pub delivery: Delivery,
    /// Where it goes.
    pub url: WebhookUrl,
    /// What it is signed with.
    pub secret: WebhookSecret,
    /// The claim's token: recording with a stale token does nothing.
    pub lease: String,
}

/// The endpoints and the delivery outbox.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait WebhookRepo: Send + Sync {
    /// Stores a new endpoint, unless its account already has `max`: then `false`, nothing
    /// stored (checked in the same atomic step, so concurrent registrations cannot overshoot).
    async fn create_webhook(&self, webhook: &Webhook, max: usize) -> Result<bool, RepoError>;
    /// The caller's endpoints, oldest first.
    async fn list_webhooks(&self, account: &AccountId) -> Result<Vec<Webhook>, RepoError>;
    /// The caller's endpoint.
    async fn get_webhook(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<Option<Webhook>, RepoError>;
    /// Deletes the caller's endpoint and its deliveries (pending ones are not sent). Whether
    /// it existed.
    async fn delete_webhook(&self, account: &AccountId, id: &WebhookId) -> Result<bool, RepoError>;
    /// The deliveries of the caller's endpoint, newest event first, each with its attempts.
    /// `None` when the endpoint is not the caller's.
    async fn list_deliveries(
        &self,
        account: &AccountId,
        id: &WebhookId,
        page: &PageRequest,
    ) -> Result<Option<Page<DeliveryRecord>>, RepoError>;
    /// Claims up to `limit` pending deliveries due at `now`, oldest first, for `lease`: none
    /// of them is claimed again before `now + lease` (so a worker that dies mid-attempt only
    /// delays its deliveries), and concurrent claims never return the same delivery.
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, RepoError>;
    /// Records an attempt of a claimed delivery and its state after it (`Delivery::after_attempt`)
    /// in one step. `false` when the claim is stale (taken over, or the endpoint deleted):
    /// nothing is recorded.
    async fn record_attempt(
        &self,
        claimed: &ClaimedDelivery,
        attempt: &Attempt,
        after: &Delivery,
    ) -> Result<bool, RepoError>;
    /// Forgets delivered and failed deliveries whose event is older than `before`. How many.
    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, RepoError>;
}

/// Where a registration's URL may not point.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DestinationRefused(pub String);

/// What a receiver answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostOutcome {
    /// It answered with this status.
    Answered(u16),
    /// It did not answer: refused, unresolvable, a private address, timed out, …
    Failed(String),
}

/// The HTTP client that POSTs deliveries.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    /// Whether deliveries to `url` may be sent: `DestinationRefused` when its host does not
    /// resolve, or resolves to an address the transport refuses (private, loopback,
    /// link-local, unless allowed).
    async fn check_destination(&self, url: &WebhookUrl) -> Result<(), DestinationRefused>;
    /// POSTs `body` as `application/json` with the `Roughy-Signature` header `signature` and
    /// the event's id and type headers, within the transport's timeout. The same refusals as
    /// `check_destination` apply at every connection (a name may resolve elsewhere later).
    async fn post(
        &self,
        url: &WebhookUrl,
        event: &WebhookEvent,
        body: &[u8],
        signature: &str,
    ) -> PostOutcome;
}

/// The body of an event's deliveries: the same bytes for every attempt.
pub trait EventEncoder: Send + Sync {
    /// The JSON body.
    fn encode(&self, event: &WebhookEvent) -> Vec<u8>;
}
