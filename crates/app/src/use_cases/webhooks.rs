//! Webhooks: registering endpoints, listing their deliveries, and delivering due events.

use futures::future::join_all;
use time::OffsetDateTime;

use roughy_domain::webhook::{parse_events, MAX_WEBHOOKS_PER_ACCOUNT};
use roughy_domain::{AccountId, Attempt, Webhook, WebhookError, WebhookId, WebhookUrl};

use super::Ingest;
use crate::error::IngestError;
use crate::pagination::{Page, PageRequest};
use crate::ports::{ClaimedDelivery, DeliveryRecord, PostOutcome};

/// How many due deliveries one worker round claims (and sends concurrently).
const DELIVERY_BATCH: usize = 16;

impl From<WebhookError> for IngestError {
    fn from(e: WebhookError) -> Self {
        let field = match e {
            WebhookError::Url => "url",
            WebhookError::Events => "events",
        };
        IngestError::Validation {
            field,
            message: e.to_string(),
        }
    }
}

impl Ingest {
    /// Registers an endpoint for `events` of the caller's assets, with a fresh signing secret.
    ///
    /// # Errors
    /// `IngestError::Validation` for a malformed URL, an unknown or empty event list, a URL
    /// the transport refuses (unresolvable, or a private address unless allowed), or an
    /// account that already has the maximum of endpoints; `Unavailable` when the repository
    /// does not answer (retryable), `Internal` otherwise.
    pub async fn create_webhook(
        &self,
        account: &AccountId,
        url: &str,
        events: &[String],
    ) -> Result<Webhook, IngestError> {
        let url = WebhookUrl::parse(url)?;
        let events = parse_events(events.iter().map(String::as_str))?;
        self.ports
            .webhook_transport
            .check_destination(&url)
            .await
            .map_err(|refused| IngestError::Validation {
                field: "url",
                message: refused.0,
            })?;
        let now = roughy_domain::time_format::to_micros(self.ports.clock.now());
        let webhook = Webhook::new(account.clone(), url, events, now);
        if !self
            .ports
            .webhooks
            .create_webhook(&webhook, MAX_WEBHOOKS_PER_ACCOUNT)
            .await?
        {
            return Err(IngestError::TooManyWebhooks {
                limit: MAX_WEBHOOKS_PER_ACCOUNT,
            });
        }
        Ok(webhook)
    }

    /// The caller's endpoints, oldest first.
    ///
    /// # Errors
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn list_webhooks(&self, account: &AccountId) -> Result<Vec<Webhook>, IngestError> {
        Ok(self.ports.webhooks.list_webhooks(account).await?)
    }

    /// The caller's endpoint.
    ///
    /// # Errors
    /// `IngestError::NotFound` when it is not the caller's; `Unavailable` when the repository
    /// does not answer (retryable), `Internal` otherwise.
    pub async fn get_webhook(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<Webhook, IngestError> {
        self.ports
            .webhooks
            .get_webhook(account, id)
            .await?
            .ok_or(IngestError::NotFound)
    }

    /// Deletes the caller's endpoint; its pending deliveries are not sent.
    ///
    /// # Errors
    /// `IngestError::NotFound` when it is not the caller's; `Unavailable` when the repository
    /// does not answer (retryable), `Internal` otherwise.
    pub async fn delete_webhook(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<(), IngestError> {
        if self.ports.webhooks.delete_webhook(account, id).await? {
            Ok(())
        } else {
            Err(IngestError::NotFound)
        }
    }

    /// The deliveries of the caller's endpoint, newest event first, with their attempts.
    ///
    /// # Errors
    /// `IngestError::NotFound` when the endpoint is not the caller's; `Unavailable` when the
    /// repository does not answer (retryable), `Internal` otherwise.
    pub async fn list_deliveries(
        &self,
        account: &AccountId,
        id: &WebhookId,
        page: &PageRequest,
    ) -> Result<Page<DeliveryRecord>, IngestError> {
        self.ports
            .webhooks
            .list_deliveries(account, id, page)
            .await?
            .ok_or(IngestError::NotFound)
    }

    /// Sends the deliveries due now, one attempt each, concurrently, and records how each
    /// went (a 2xx delivers; anything else is retried with backoff until the retry window
    /// closes). Returns how many were attempted.
    ///
    /// # Errors
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise; a delivery whose attempt cannot be recorded is attempted again after its
    /// claim runs out (at least once).
    pub async fn deliver_webhooks(&self) -> Result<usize, IngestError> {
        let now = self.ports.clock.now();
        let claimed = self
            .ports
            .webhooks
            .claim_deliveries(now, self.config.webhook_lease, DELIVERY_BATCH)
            .await?;
        let count = claimed.len();
        for result in join_all(claimed.iter().map(|c| self.deliver(c))).await {
            result?;
        }
        Ok(count)
    }

    /// One attempt of a claimed delivery, recorded.
    async fn deliver(&self, claimed: &ClaimedDelivery) -> Result<(), IngestError> {
        let event = &claimed.delivery.event;
        let body = self.ports.event_encoder.encode(event);
        let started = self.ports.clock.now();
        let signature = claimed.secret.sign(started, &body);
        let outcome = self
            .ports
            .webhook_transport
            .post(&claimed.url, event, &body, &signature)
            .await;
        let finished = self.ports.clock.now();
        let attempt = Attempt {
            at: roughy_domain::time_format::to_micros(started),
            duration_ms: u64::try_from((finished - started).whole_milliseconds()).unwrap_or(0),
            status: match outcome {
                PostOutcome::Answered(status) => Some(status),
                PostOutcome::Failed(_) => None,
            },
            error: match outcome {
                PostOutcome::Answered(_) => None,
                PostOutcome::Failed(reason) => Some(reason),
            },
        };
        let mut after = claimed.delivery.clone();
        after.after_attempt(&attempt, self.config.webhook_retry_delay);
        after.next_attempt_at = roughy_domain::time_format::to_micros(after.next_attempt_at);
        tracing::info!(
            delivery = %after.id,
            event = %event.id,
            kind = event.kind.as_str(),
            status = ?attempt.status,
            error = attempt.error.as_deref(),
            state = after.state.as_str(),
            attempts = after.attempts,
            "webhook delivery attempted"
        );
        if !self
            .ports
            .webhooks
            .record_attempt(claimed, &attempt, &after)
            .await?
        {
            tracing::debug!(delivery = %after.id, "webhook delivery's claim was stale; not recorded");
        }
        Ok(())
    }

    /// Forgets finished deliveries whose event is older than `before` (the reaper's).
    pub(super) async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<(), IngestError> {
        let pruned = self.ports.webhooks.prune_deliveries(before).await?;
        if pruned > 0 {
            tracing::debug!(pruned, "finished webhook deliveries forgotten");
        }
        Ok(())
    }
}
