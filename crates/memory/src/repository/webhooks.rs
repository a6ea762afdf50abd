//! `WebhookRepo`: endpoints and the delivery outbox. Events are written by
//! [`State::announce`], called by the state-changing methods under the same lock.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use roughy_app::ports::{ClaimedDelivery, DeliveryRecord, RepoError, WebhookRepo};
use roughy_app::{Page, PageRequest};
use roughy_domain::ids::random_base62;
use roughy_domain::{
    AccountId, Asset, Attempt, Delivery, DeliveryState, EventKind, Webhook, WebhookEvent, WebhookId,
};

use super::{newest_first, MemoryRepository, State};

/// A delivery in the outbox, with its attempts and its current claim.
#[derive(Debug)]
pub(super) struct DeliveryRow {
    delivery: Delivery,
    attempts: Vec<Attempt>,
    lease: Option<String>,
    /// Outbox order (event times can tie).
    seq: u64,
}

impl State {
    /// Deliveries waiting for an attempt or a retry.
    pub(super) fn pending_deliveries(&self) -> usize {
        self.deliveries
            .iter()
            .filter(|d| d.delivery.state == DeliveryState::Pending)
            .count()
    }

    /// Records `kind` about `asset` for every endpoint of its account subscribed to it, as
    /// part of the caller's atomic change.
    pub(super) fn announce(&mut self, kind: EventKind, asset: &Asset, at: OffsetDateTime) {
        let subscribed: Vec<&Webhook> = self
            .webhooks
            .iter()
            .filter(|w| w.account_id == asset.account_id && w.subscribes(kind))
            .collect();
        if subscribed.is_empty() {
            return;
        }
        let event = WebhookEvent::new(kind, asset.clone(), at);
        let rows: Vec<DeliveryRow> = subscribed
            .into_iter()
            .map(|w| DeliveryRow {
                delivery: Delivery::new(w, event.clone()),
                attempts: Vec::new(),
                lease: None,
                seq: 0,
            })
            .collect();
        for mut row in rows {
            self.next_delivery_seq += 1;
            row.seq = self.next_delivery_seq;
            self.deliveries.push(row);
        }
    }
}

#[async_trait]
impl WebhookRepo for MemoryRepository {
    async fn create_webhook(&self, webhook: &Webhook, max: usize) -> Result<bool, RepoError> {
        let mut state = self.state()?;
        if !state.accounts.contains_key(&webhook.account_id) {
            return Err(RepoError::NotFound);
        }
        let count = state
            .webhooks
            .iter()
            .filter(|w| w.account_id == webhook.account_id)
            .count();
        if count >= max {
            return Ok(false);
        }
        state.webhooks.push(webhook.clone());
        Ok(true)
    }

    async fn list_webhooks(&self, account: &AccountId) -> Result<Vec<Webhook>, RepoError> {
        let state = self.state()?;
        let mut found: Vec<Webhook> = state
            .webhooks
            .iter()
            .filter(|w| &w.account_id == account)
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
        Ok(found)
    }

    async fn get_webhook(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<Option<Webhook>, RepoError> {
        let state = self.state()?;
        Ok(state
            .webhooks
            .iter()
            .find(|w| &w.id == id && &w.account_id == account)
            .cloned())
    }

    async fn delete_webhook(&self, account: &AccountId, id: &WebhookId) -> Result<bool, RepoError> {
        let mut state = self.state()?;
        let before = state.webhooks.len();
        state
            .webhooks
            .retain(|w| !(&w.id == id && &w.account_id == account));
        let deleted = state.webhooks.len() < before;
        if deleted {
            state.deliveries.retain(|d| &d.delivery.webhook_id != id);
        }
        Ok(deleted)
    }

    async fn list_deliveries(
        &self,
        account: &AccountId,
        id: &WebhookId,
        page: &PageRequest,
    ) -> Result<Option<Page<DeliveryRecord>>, RepoError> {
        let state = self.state()?;
        if !state
            .webhooks
            .iter()
            .any(|w| &w.id == id && &w.account_id == account)
        {
            return Ok(None);
        }
        let records: Vec<DeliveryRecord> = state
            .deliveries
            .iter()
            .filter(|d| &d.delivery.webhook_id == id)
            .map(|d| DeliveryRecord {
                delivery: d.delivery.clone(),
                attempts: d.attempts.clone(),
            })
            .collect();
        Ok(Some(newest_first(&records, page, |r| {
            (r.delivery.event.created_at, r.delivery.id.as_str())
        })))
    }

    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, RepoError> {
        let mut state = self.state()?;
        let state = &mut *state;
        let mut due: Vec<&mut DeliveryRow> = state
            .deliveries
            .iter_mut()
            .filter(|d| {
                d.delivery.state == DeliveryState::Pending && d.delivery.next_attempt_at <= now
            })
            .collect();
        due.sort_by_key(|d| (d.delivery.next_attempt_at, d.seq));
        let mut claimed = Vec::new();
        for row in due.into_iter().take(limit) {
            let Some(webhook) = state
                .webhooks
                .iter()
                .find(|w| w.id == row.delivery.webhook_id)
            else {
                continue;
            };
            let token = random_base62(22);
            row.lease = Some(token.clone());
            let handed = row.delivery.clone();
            row.delivery.next_attempt_at = now + lease;
            claimed.push(ClaimedDelivery {
                delivery: handed,
                url: webhook.url.clone(),
                secret: webhook.secret.clone(),
                lease: token,
            });
        }
        Ok(claimed)
    }

    async fn record_attempt(
        &self,
        claimed: &ClaimedDelivery,
        attempt: &Attempt,
        after: &Delivery,
    ) -> Result<bool, RepoError> {
        let mut state = self.state()?;
        let Some(row) = state
            .deliveries
            .iter_mut()
            .find(|d| d.delivery.id == claimed.delivery.id)
        else {
            return Ok(false);
        };
        if row.lease.as_deref() != Some(claimed.lease.as_str()) {
            return Ok(false);
        }
        row.lease = None;
        row.delivery.state = after.state;
        row.delivery.attempts = after.attempts;
        row.delivery.next_attempt_at = after.next_attempt_at;
        row.attempts.push(attempt.clone());
        Ok(true)
    }

    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut state = self.state()?;
        let count = state.deliveries.len();
        state.deliveries.retain(|d| {
            d.delivery.state == DeliveryState::Pending || d.delivery.event.created_at >= before
        });
        Ok(u64::try_from(count - state.deliveries.len()).unwrap_or(u64::MAX))
    }
}
