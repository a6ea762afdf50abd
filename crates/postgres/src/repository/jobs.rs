//! The processing queue: leased claims (`FOR UPDATE SKIP LOCKED`), settlement of the charge
//! (once, ever), release.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::{Duration, OffsetDateTime};

use roughy_app::ports::{Job, JobOutcome, JobRepo, RepoError};
use roughy_domain::ids::random_base62;
use roughy_domain::{Asset, AssetState, EventKind, Upload};

use super::PgRepository;
use crate::error::{conflict, db_error, StoreError};
use crate::prepared::Prepared;
use crate::rows::{AssetChanges, AssetRow, LedgerRow, UploadRow};
use crate::schema::{accounts, assets, jobs, ledger_entries, uploads};

/// Length of a lease token: as unguessable as an id.
const LEASE_TOKEN_LEN: usize = 22;

#[async_trait]
impl JobRepo for PgRepository {
    #[tracing::instrument(skip(self))]
    async fn claim_job(
        &self,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Option<Job>, RepoError> {
        let token = random_base62(LEASE_TOKEN_LEN);
        let mut conn = self.conn().await?;
        let job = conn
            .transaction::<_, StoreError, _>(async |conn| {
                // Oldest due job by enqueue order. A job another worker is claiming right now
                // is skipped, not waited for: each claim gets a different job.
                let due: Option<(String, i32)> = jobs::table
                    .filter(jobs::available_at.le(now))
                    .filter(jobs::leased_until.is_null().or(jobs::leased_until.le(now)))
                    .order(jobs::seq.asc())
                    .select((jobs::asset_id, jobs::attempts))
                    .limit(1)
                    .for_update()
                    .skip_locked()
                    .first(conn)
                    .await
                    .optional()?;
                let Some((asset_id, attempts)) = due else {
                    return Ok(None);
                };
                Prepared(diesel::update(jobs::table.find(&asset_id)).set((
                    jobs::lease_token.eq(&token),
                    jobs::leased_until.eq(now + lease),
                    jobs::attempts.eq(jobs::attempts + 1),
                )))
                .execute(conn)
                .await?;
                // The foreign key keeps the asset as long as its job.
                let asset: AssetRow = assets::table
                    .find(&asset_id)
                    .select(AssetRow::as_select())
                    .first(conn)
                    .await?;
                let upload: UploadRow = uploads::table
                    .filter(uploads::asset_id.eq(&asset_id))
                    .select(UploadRow::as_select())
                    .first(conn)
                    .await?;
                Ok(Some(Job {
                    asset: Asset::try_from(asset)?,
                    upload: Upload::try_from(upload)?,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                    lease: token.clone(),
                }))
            })
            .await?;
        Ok(job)
    }

    #[tracing::instrument(skip_all, fields(asset = %job.asset.id, attempts = job.attempts))]
    async fn complete_job(
        &self,
        job: &Job,
        outcome: &JobOutcome,
        at: OffsetDateTime,
    ) -> Result<Option<AssetState>, RepoError> {
        let asset_id = job.asset.id.as_str();
        let mut conn = self.conn().await?;
        let state = conn
            .transaction::<_, StoreError, _>(async |conn| {
                // Lock order: asset, job, account (see the module docs). A deleted asset took
                // its job with it: this claim settles nothing.
                let current: Option<AssetRow> = assets::table
                    .find(asset_id)
                    .select(AssetRow::as_select())
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                let Some(current) = current else {
                    return Ok(None);
                };
                // Another worker took over after the lease ran out (or the job is done): stale.
                let claimed: Option<String> = jobs::table
                    .find(asset_id)
                    .filter(jobs::lease_token.eq(&job.lease))
                    .select(jobs::asset_id)
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                if claimed.is_none() {
                    return Ok(None);
                }

                let mut asset = Asset::try_from(current)?;
                let mut charge_entry = None;
                match outcome {
                    JobOutcome::Measured { duration, format } => {
                        let balance: i64 = accounts::table
                            .find(asset.account_id.as_str())
                            .select(accounts::balance)
                            .for_update()
                            .first(conn)
                            .await
                            .optional()?
                            .ok_or(RepoError::NotFound)?;
                        charge_entry = asset
                            .settle_measured(*duration, *format, balance, at)
                            .map_err(conflict)?;
                    }
                    JobOutcome::Failed(failure) => asset.fail(failure.clone()).map_err(conflict)?,
                }

                if let Some(entry) = charge_entry {
                    // The partial unique index on charged assets makes a second charge of this
                    // asset fail here (a conflict), whatever raced: a charge happens once, ever.
                    Prepared(
                        diesel::insert_into(ledger_entries::table).values(LedgerRow::from(&entry)),
                    )
                    .execute(conn)
                    .await?;
                    Prepared(
                        diesel::update(accounts::table.find(asset.account_id.as_str()))
                            .set(accounts::balance.eq(entry.balance_after)),
                    )
                    .execute(conn)
                    .await?;
                }
                Prepared(
                    diesel::update(assets::table.find(asset_id))
                        .set(AssetChanges::try_from(&asset)?),
                )
                .execute(conn)
                .await?;
                if asset.state == AssetState::Failed {
                    // The start of the failed-bytes retention.
                    diesel::update(assets::table.find(asset_id))
                        .set(assets::failed_at.eq(at))
                        .execute(conn)
                        .await?;
                }
                Prepared(diesel::delete(jobs::table.find(asset_id)))
                    .execute(conn)
                    .await?;
                if let Some(kind) = EventKind::for_state(asset.state) {
                    super::webhooks::announce(conn, kind, std::slice::from_ref(&asset), at).await?;
                }
                Ok(Some(asset.state))
            })
            .await?;
        Ok(state)
    }

    #[tracing::instrument(skip_all, fields(asset = %job.asset.id))]
    async fn release_job(&self, job: &Job, retry_at: OffsetDateTime) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        // A stale claim gives back nothing: the job belongs to whoever holds it now.
        diesel::update(
            jobs::table
                .find(job.asset.id.as_str())
                .filter(jobs::lease_token.eq(&job.lease)),
        )
        .set((
            jobs::lease_token.eq(None::<String>),
            jobs::leased_until.eq(None::<OffsetDateTime>),
            jobs::available_at.eq(retry_at),
        ))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(asset = %job.asset.id))]
    async fn renew_job(&self, job: &Job, until: OffsetDateTime) -> Result<bool, RepoError> {
        let mut conn = self.conn().await?;
        let renewed = diesel::update(
            jobs::table
                .find(job.asset.id.as_str())
                .filter(jobs::lease_token.eq(&job.lease)),
        )
        .set(jobs::leased_until.eq(until))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(renewed > 0)
    }
}
