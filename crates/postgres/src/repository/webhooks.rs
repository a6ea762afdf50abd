//! `WebhookRepo`: endpoints and the delivery outbox. Events are written by [`announce`],
//! called by the state-changing methods inside their transactions.
//!
//! A claim is one transaction: the due rows are read `FOR UPDATE SKIP LOCKED`, and their
//! `next_attempt_at` moved past the lease with a fresh token, so two processes never send the
//! same delivery at once and a process that dies mid-attempt only delays it until the lease
//! runs out.

use std::collections::HashMap;

use async_trait::async_trait;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use time::{Duration, OffsetDateTime};

use roughy_app::ports::{ClaimedDelivery, DeliveryRecord, RepoError, WebhookRepo};
use roughy_app::{Cursor, Page, PageRequest};
use roughy_domain::ids::random_base62;
use roughy_domain::{
    AccountId, Asset, Attempt, Delivery, DeliveryId, DeliveryState, EventId, EventKind, Webhook,
    WebhookEvent, WebhookId, WebhookSecret, WebhookUrl,
};

use super::PgRepository;
use crate::error::{corrupt, db_error, StoreError};
use crate::rows::{overfetch, stored_id, to_i64, AssetRow};
use crate::schema::{webhook_attempts, webhook_deliveries, webhooks};

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = webhooks, check_for_backend(diesel::pg::Pg))]
struct WebhookRow {
    id: String,
    account_id: String,
    url: String,
    events: Vec<Option<String>>,
    secret: String,
    created_at: OffsetDateTime,
}

fn webhook(row: WebhookRow) -> Result<Webhook, RepoError> {
    let WebhookRow {
        id,
        account_id,
        url,
        events,
        secret,
        created_at,
    } = row;
    let events = events
        .into_iter()
        .map(|e| {
            e.as_deref()
                .and_then(EventKind::parse)
                .ok_or_else(|| corrupt(format!("webhook event {e:?}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Webhook {
        id: stored_id!(WebhookId, id)?,
        account_id: stored_id!(AccountId, account_id)?,
        url: WebhookUrl::parse(&url).map_err(corrupt)?,
        events,
        secret: WebhookSecret::from_stored(secret),
        created_at,
    })
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries, check_for_backend(diesel::pg::Pg))]
struct DeliveryRow {
    id: String,
    webhook_id: String,
    event_id: String,
    event_type: String,
    event_created_at: OffsetDateTime,
    asset: String,
    state: String,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
    lease_token: Option<String>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = RepoError;

    fn try_from(row: DeliveryRow) -> Result<Self, RepoError> {
        let asset: AssetRow = serde_json::from_str(&row.asset).map_err(corrupt)?;
        Ok(Delivery {
            id: stored_id!(DeliveryId, row.id)?,
            webhook_id: stored_id!(WebhookId, row.webhook_id)?,
            event: WebhookEvent {
                id: stored_id!(EventId, row.event_id)?,
                kind: EventKind::parse(&row.event_type)
                    .ok_or_else(|| corrupt(format!("event type {:?}", row.event_type)))?,
                created_at: row.event_created_at,
                asset: Asset::try_from(asset)?,
            },
            state: DeliveryState::parse(&row.state)
                .ok_or_else(|| corrupt(format!("delivery state {:?}", row.state)))?,
            attempts: u32::try_from(row.attempts).map_err(corrupt)?,
            next_attempt_at: row.next_attempt_at,
        })
    }
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts, check_for_backend(diesel::pg::Pg))]
struct AttemptRow {
    delivery_id: String,
    n: i32,
    at: OffsetDateTime,
    status: Option<i32>,
    error: Option<String>,
    duration_ms: i64,
}

impl TryFrom<AttemptRow> for Attempt {
    type Error = RepoError;

    fn try_from(row: AttemptRow) -> Result<Self, RepoError> {
        Ok(Attempt {
            at: row.at,
            status: row
                .status
                .map(|s| u16::try_from(s).map_err(corrupt))
                .transpose()?,
            error: row.error,
            duration_ms: u64::try_from(row.duration_ms).map_err(corrupt)?,
        })
    }
}

/// Records `kind` about each of `assets` (one account's) for every endpoint of the account
/// subscribed to it, in the caller's transaction. Costs one indexed read when nobody listens.
pub(super) async fn announce(
    conn: &mut AsyncPgConnection,
    kind: EventKind,
    assets: &[Asset],
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    let Some(first) = assets.first() else {
        return Ok(());
    };
    let listening: Vec<String> = webhooks::table
        .filter(webhooks::account_id.eq(first.account_id.as_str()))
        .filter(webhooks::events.contains(vec![Some(kind.as_str().to_owned())]))
        .select(webhooks::id)
        .load(conn)
        .await?;
    if listening.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(listening.len() * assets.len());
    for asset in assets {
        let event = WebhookEvent::new(kind, asset.clone(), at);
        let snapshot = serde_json::to_string(&AssetRow::try_from(asset)?).map_err(corrupt)?;
        for webhook_id in &listening {
            rows.push(DeliveryRow {
                id: DeliveryId::generate().as_str().to_owned(),
                webhook_id: webhook_id.clone(),
                event_id: event.id.as_str().to_owned(),
                event_type: kind.as_str().to_owned(),
                event_created_at: at,
                asset: snapshot.clone(),
                state: DeliveryState::Pending.as_str().to_owned(),
                attempts: 0,
                next_attempt_at: at,
                lease_token: None,
            });
        }
    }
    diesel::insert_into(webhook_deliveries::table)
        .values(&rows)
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl WebhookRepo for PgRepository {
    #[tracing::instrument(skip_all, fields(webhook = %hook.id, account = %hook.account_id))]
    async fn create_webhook(&self, hook: &Webhook, max: usize) -> Result<bool, RepoError> {
        let mut conn = self.conn().await?;
        let created = conn
            .transaction::<_, StoreError, _>(async |conn| {
                // The account row's lock serialises registrations, so the count holds.
                super::lock_account(conn, hook.account_id.as_str()).await?;
                let count: i64 = webhooks::table
                    .filter(webhooks::account_id.eq(hook.account_id.as_str()))
                    .select(count_star())
                    .first(conn)
                    .await?;
                if count >= to_i64(u64::try_from(max).unwrap_or(u64::MAX))? {
                    return Ok(false);
                }
                diesel::insert_into(webhooks::table)
                    .values((
                        webhooks::id.eq(hook.id.as_str()),
                        webhooks::account_id.eq(hook.account_id.as_str()),
                        webhooks::url.eq(hook.url.as_str()),
                        webhooks::events.eq(hook
                            .events
                            .iter()
                            .map(|e| Some(e.as_str().to_owned()))
                            .collect::<Vec<_>>()),
                        webhooks::secret.eq(hook.secret.expose()),
                        webhooks::created_at.eq(hook.created_at),
                    ))
                    .execute(conn)
                    .await?;
                Ok(true)
            })
            .await?;
        Ok(created)
    }

    #[tracing::instrument(skip_all, fields(account = %account))]
    async fn list_webhooks(&self, account: &AccountId) -> Result<Vec<Webhook>, RepoError> {
        let mut conn = self.conn().await?;
        let rows: Vec<WebhookRow> = webhooks::table
            .filter(webhooks::account_id.eq(account.as_str()))
            .order((webhooks::created_at.asc(), webhooks::id.asc()))
            .select(WebhookRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(webhook).collect()
    }

    #[tracing::instrument(skip_all, fields(webhook = %id, account = %account))]
    async fn get_webhook(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<Option<Webhook>, RepoError> {
        let mut conn = self.conn().await?;
        webhooks::table
            .find(id.as_str())
            .filter(webhooks::account_id.eq(account.as_str()))
            .select(WebhookRow::as_select())
            .first::<WebhookRow>(&mut conn)
            .await
            .optional()
            .map_err(db_error)?
            .map(webhook)
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(webhook = %id, account = %account))]
    async fn delete_webhook(&self, account: &AccountId, id: &WebhookId) -> Result<bool, RepoError> {
        let mut conn = self.conn().await?;
        // Its deliveries and their attempts go by cascade.
        let deleted = diesel::delete(
            webhooks::table
                .find(id.as_str())
                .filter(webhooks::account_id.eq(account.as_str())),
        )
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(deleted > 0)
    }

    #[tracing::instrument(skip_all, fields(webhook = %id, account = %account))]
    async fn list_deliveries(
        &self,
        account: &AccountId,
        id: &WebhookId,
        page: &PageRequest,
    ) -> Result<Option<Page<DeliveryRecord>>, RepoError> {
        let mut conn = self.conn().await?;
        let found: Option<String> = webhooks::table
            .find(id.as_str())
            .filter(webhooks::account_id.eq(account.as_str()))
            .select(webhooks::id)
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        if found.is_none() {
            return Ok(None);
        }
        let mut query = webhook_deliveries::table
            .filter(webhook_deliveries::webhook_id.eq(id.as_str()))
            .select(DeliveryRow::as_select())
            .order((
                webhook_deliveries::event_created_at.desc(),
                webhook_deliveries::id.desc(),
            ))
            .limit(overfetch(page.limit))
            .into_boxed();
        if let Some(cursor) = &page.cursor {
            query = query.filter(
                webhook_deliveries::event_created_at
                    .lt(cursor.created_at)
                    .or(webhook_deliveries::event_created_at
                        .eq(cursor.created_at)
                        .and(webhook_deliveries::id.lt(cursor.id.as_str()))),
            );
        }
        let rows: Vec<DeliveryRow> = query.load(&mut conn).await.map_err(db_error)?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let attempts: Vec<AttemptRow> = webhook_attempts::table
            .filter(webhook_attempts::delivery_id.eq_any(&ids))
            .order((webhook_attempts::delivery_id, webhook_attempts::n))
            .select(AttemptRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db_error)?;
        let mut attempts_of: HashMap<String, Vec<Attempt>> = HashMap::new();
        for row in attempts {
            let id = row.delivery_id.clone();
            attempts_of
                .entry(id)
                .or_default()
                .push(Attempt::try_from(row)?);
        }
        let records = rows
            .into_iter()
            .map(|row| {
                let attempts = attempts_of.remove(&row.id).unwrap_or_default();
                Ok(DeliveryRecord {
                    delivery: Delivery::try_from(row)?,
                    attempts,
                })
            })
            .collect::<Result<Vec<_>, RepoError>>()?;
        Ok(Some(Page::from_overfetch(records, page.limit, |r| {
            Cursor {
                created_at: r.delivery.event.created_at,
                id: r.delivery.id.as_str().to_owned(),
            }
        })))
    }

    #[tracing::instrument(skip(self))]
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, RepoError> {
        let mut conn = self.conn().await?;
        let claimed = conn
            .transaction::<_, StoreError, _>(async |conn| {
                let due: Vec<DeliveryRow> = webhook_deliveries::table
                    .filter(webhook_deliveries::state.eq(DeliveryState::Pending.as_str()))
                    .filter(webhook_deliveries::next_attempt_at.le(now))
                    .order(webhook_deliveries::next_attempt_at.asc())
                    .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                    .select(DeliveryRow::as_select())
                    .for_update()
                    .skip_locked()
                    .load(conn)
                    .await?;
                if due.is_empty() {
                    return Ok(Vec::new());
                }
                let hook_ids: Vec<&str> = due.iter().map(|d| d.webhook_id.as_str()).collect();
                let hooks: Vec<(String, String, String)> = webhooks::table
                    .filter(webhooks::id.eq_any(&hook_ids))
                    .select((webhooks::id, webhooks::url, webhooks::secret))
                    .load(conn)
                    .await?;
                let mut claimed = Vec::with_capacity(due.len());
                for row in due {
                    let Some((_, url, secret)) = hooks.iter().find(|h| h.0 == row.webhook_id)
                    else {
                        continue;
                    };
                    let token = random_base62(22);
                    diesel::update(webhook_deliveries::table.find(&row.id))
                        .set((
                            webhook_deliveries::next_attempt_at.eq(now + lease),
                            webhook_deliveries::lease_token.eq(&token),
                        ))
                        .execute(conn)
                        .await?;
                    claimed.push(ClaimedDelivery {
                        url: WebhookUrl::parse(url).map_err(corrupt)?,
                        secret: WebhookSecret::from_stored(secret.clone()),
                        delivery: Delivery::try_from(row)?,
                        lease: token,
                    });
                }
                Ok(claimed)
            })
            .await?;
        Ok(claimed)
    }

    #[tracing::instrument(skip_all, fields(delivery = %claimed.delivery.id))]
    async fn record_attempt(
        &self,
        claimed: &ClaimedDelivery,
        attempt: &Attempt,
        after: &Delivery,
    ) -> Result<bool, RepoError> {
        let mut conn = self.conn().await?;
        let recorded = conn
            .transaction::<_, StoreError, _>(async |conn| {
                let updated = diesel::update(
                    webhook_deliveries::table
                        .find(claimed.delivery.id.as_str())
                        .filter(webhook_deliveries::lease_token.eq(&claimed.lease)),
                )
                .set((
                    webhook_deliveries::state.eq(after.state.as_str()),
                    webhook_deliveries::attempts
                        .eq(i32::try_from(after.attempts).unwrap_or(i32::MAX)),
                    webhook_deliveries::next_attempt_at.eq(after.next_attempt_at),
                    webhook_deliveries::lease_token.eq(None::<String>),
                ))
                .execute(conn)
                .await?;
                if updated == 0 {
                    return Ok(false);
                }
                diesel::insert_into(webhook_attempts::table)
                    .values(AttemptRow {
                        delivery_id: claimed.delivery.id.as_str().to_owned(),
                        n: i32::try_from(after.attempts).unwrap_or(i32::MAX),
                        at: attempt.at,
                        status: attempt.status.map(i32::from),
                        error: attempt.error.clone(),
                        duration_ms: to_i64(attempt.duration_ms)?,
                    })
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
                Ok(true)
            })
            .await?;
        Ok(recorded)
    }

    #[tracing::instrument(skip(self))]
    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut conn = self.conn().await?;
        let pruned = diesel::delete(
            webhook_deliveries::table
                .filter(webhook_deliveries::state.ne(DeliveryState::Pending.as_str()))
                .filter(webhook_deliveries::event_created_at.lt(before)),
        )
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(u64::try_from(pruned).unwrap_or(u64::MAX))
    }
}
