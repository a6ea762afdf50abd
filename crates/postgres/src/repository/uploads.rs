//! TUS uploads: lookup with tombstones, progress, finalisation (with the job), discarding,
//! expiry.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;

use roughy_app::ports::{GoneReason, Purge, RepoError, UploadFence, UploadLookup, UploadRepo};
use roughy_domain::{AccountId, Asset, MediaFormat, Staging, Upload, UploadId, UploadState};

use super::{bury, Deleted, PgRepository};
use crate::error::{conflict, db_error, StoreError};
use crate::prepared::Prepared;
use crate::rows::{
    parse_gone_reason, stored_id, upload_state_name, AssetChanges, AssetRow, UploadRow,
};
use crate::schema::{assets, jobs, upload_locks, upload_tombstones, uploads};

/// The stored name of the active state.
fn active() -> &'static str {
    upload_state_name(UploadState::Active)
}

/// Under the lease `fence`, the upload, locked, if it is still taking bytes: `LeaseLost` unless
/// the fence still holds the upload's lock, else `NotFound` unless the upload is active.
///
/// The lock row is locked `FOR SHARE` until the transaction ends, so no takeover can commit
/// between this check and the caller's write. Both reads go out together (pipelined on the
/// connection, executed in order): one round trip instead of two.
async fn lock_fenced(
    conn: &mut AsyncPgConnection,
    id: &UploadId,
    fence: &UploadFence,
) -> Result<Upload, StoreError> {
    let conn: &AsyncPgConnection = conn;
    let (mut for_fence, mut for_upload) = (conn, conn);
    let held = upload_locks::table
        .find(id.as_str())
        .filter(upload_locks::holder.eq(&fence.holder))
        .filter(upload_locks::generation.eq(fence.generation))
        .select(upload_locks::upload_id)
        .for_share()
        .first::<String>(&mut for_fence);
    let row = uploads::table
        .find(id.as_str())
        .filter(uploads::state.eq(active()))
        .select(UploadRow::as_select())
        .for_update()
        .first::<UploadRow>(&mut for_upload);
    let (held, row) = futures::future::join(held, row).await;
    // The fence's answer first: after its failure the second read only reports the aborted
    // transaction.
    if held.optional()?.is_none() {
        return Err(RepoError::LeaseLost.into());
    }
    Ok(Upload::try_from(
        row.optional()?.ok_or(RepoError::NotFound)?,
    )?)
}

/// The upload's asset, locked.
async fn lock_asset(conn: &mut AsyncPgConnection, upload: &Upload) -> Result<Asset, StoreError> {
    let row: Option<AssetRow> = assets::table
        .find(upload.asset_id.as_str())
        .select(AssetRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?;
    Ok(Asset::try_from(row.ok_or(RepoError::NotFound)?)?)
}

/// The upload's asset takes the format sniffed from its first chunk ([`Asset::identify`]), in
/// the caller's transaction.
async fn identify(
    conn: &mut AsyncPgConnection,
    upload: &Upload,
    format: MediaFormat,
) -> Result<(), StoreError> {
    let mut asset = lock_asset(conn, upload).await?;
    asset.identify(format).map_err(conflict)?;
    Prepared(
        diesel::update(assets::table.find(asset.id.as_str())).set(AssetChanges::try_from(&asset)?),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes what the domain decided about an upload: its offset, expiry, state and staging.
async fn save(conn: &mut AsyncPgConnection, upload: &Upload) -> Result<(), StoreError> {
    let row = UploadRow::try_from(upload)?;
    Prepared(
        diesel::update(uploads::table.find(upload.id.as_str())).set((
            uploads::upload_offset.eq(row.upload_offset),
            uploads::expires_at.eq(row.expires_at),
            uploads::state.eq(row.state),
            uploads::staging.eq(row.staging),
        )),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A new processing job.
#[derive(Debug, Insertable)]
#[diesel(table_name = jobs)]
struct NewJob<'a> {
    asset_id: &'a str,
    available_at: OffsetDateTime,
    attempts: i32,
}

#[async_trait]
impl UploadRepo for PgRepository {
    #[tracing::instrument(skip_all, fields(upload = %id))]
    async fn upload_owner(&self, id: &UploadId) -> Result<Option<AccountId>, RepoError> {
        let mut conn = self.conn().await?;
        let live: Option<String> = uploads::table
            .find(id.as_str())
            .select(uploads::account_id)
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        let owner = match live {
            Some(owner) => Some(owner),
            None => upload_tombstones::table
                .find(id.as_str())
                .select(upload_tombstones::account_id)
                .first(&mut conn)
                .await
                .optional()
                .map_err(db_error)?,
        };
        owner
            .map(|o| crate::rows::stored_id!(AccountId, o))
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(upload = %id, account = %account))]
    async fn find_upload(
        &self,
        account: &AccountId,
        id: &UploadId,
    ) -> Result<UploadLookup, RepoError> {
        let mut conn = self.conn().await?;
        let live: Option<UploadRow> = uploads::table
            .find(id.as_str())
            .filter(uploads::account_id.eq(account.as_str()))
            .select(UploadRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        if let Some(row) = live {
            return Ok(UploadLookup::Live(Upload::try_from(row)?));
        }
        // Another account's tombstone answers as never issued: existence never leaks.
        let reason: Option<String> = upload_tombstones::table
            .find(id.as_str())
            .filter(upload_tombstones::account_id.eq(account.as_str()))
            .select(upload_tombstones::reason)
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        Ok(match reason {
            Some(reason) => UploadLookup::Gone(parse_gone_reason(&reason)?),
            None => UploadLookup::Unknown,
        })
    }

    #[tracing::instrument(skip_all, fields(upload = %id, ?format))]
    async fn identify_upload(
        &self,
        id: &UploadId,
        format: MediaFormat,
        staging: &Staging,
        fence: &UploadFence,
    ) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            let mut upload = lock_fenced(conn, id, fence).await?;
            upload.stage(staging.clone()).map_err(conflict)?;
            identify(conn, &upload, format).await?;
            save(conn, &upload).await
        })
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(upload = %id, offset))]
    async fn record_progress(
        &self,
        id: &UploadId,
        offset: u64,
        staging: &Staging,
        expires_at: OffsetDateTime,
        identified: Option<MediaFormat>,
        fence: &UploadFence,
    ) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            let mut upload = lock_fenced(conn, id, fence).await?;
            if let Some(format) = identified {
                identify(conn, &upload, format).await?;
            }
            upload
                .advance(offset, staging.clone(), expires_at)
                .map_err(conflict)?;
            save(conn, &upload).await
        })
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(upload = %id))]
    async fn finalize_upload(
        &self,
        id: &UploadId,
        staging: &Staging,
        identified: Option<MediaFormat>,
        at: OffsetDateTime,
        fence: &UploadFence,
    ) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            let mut upload = lock_fenced(conn, id, fence).await?;
            let mut asset = lock_asset(conn, &upload).await?;
            if let Some(format) = identified {
                asset.identify(format).map_err(conflict)?;
            }
            upload.complete(staging.clone()).map_err(conflict)?;
            asset.finish_upload(upload.length.get()).map_err(conflict)?;
            Prepared(
                diesel::update(assets::table.find(asset.id.as_str()))
                    .set(AssetChanges::try_from(&asset)?),
            )
            .execute(conn)
            .await?;
            save(conn, &upload).await?;
            // The job is queued with the state change: a crash after the commit still has it.
            Prepared(diesel::insert_into(jobs::table).values(NewJob {
                asset_id: asset.id.as_str(),
                available_at: at,
                attempts: 0,
            }))
            .execute(conn)
            .await?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(upload = %id, ?reason))]
    async fn discard_upload(
        &self,
        id: &UploadId,
        reason: GoneReason,
        expired_before: Option<OffsetDateTime>,
        at: OffsetDateTime,
        fence: &UploadFence,
    ) -> Result<Option<Purge>, RepoError> {
        let mut conn = self.conn().await?;
        let purge = conn
            .transaction::<_, StoreError, _>(async |conn| {
                let upload = match lock_fenced(conn, id, fence).await {
                    Ok(upload) => upload,
                    Err(StoreError::Repo(RepoError::NotFound)) => return Ok(None),
                    Err(e) => return Err(e),
                };
                // The reaper listed it as expired earlier; a PATCH may have refreshed it since.
                // The row lock above makes this check and the delete one step.
                if expired_before.is_some_and(|before| !upload.expired_before(before)) {
                    return Ok(None);
                }
                let stagings = [(
                    upload.id.as_str().to_owned(),
                    upload.staging.as_str().to_owned(),
                )]
                .into_iter()
                .collect();
                let deleted: Deleted = diesel::delete(assets::table.find(upload.asset_id.as_str()))
                    .returning(AssetRow::as_returning())
                    .get_results(conn)
                    .await?;
                Ok(bury(conn, deleted, &stagings, reason, at).await?.pop())
            })
            .await?;
        Ok(purge)
    }

    #[tracing::instrument(skip(self))]
    async fn expired_uploads(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<UploadId>, RepoError> {
        let mut conn = self.conn().await?;
        // Longest expired first, so a limited batch is deterministic.
        let ids: Vec<String> = uploads::table
            .filter(uploads::state.eq(active()))
            .filter(uploads::expires_at.lt(now))
            .order((uploads::expires_at.asc(), uploads::id.asc()))
            .select(uploads::id)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .load(&mut conn)
            .await
            .map_err(db_error)?;
        ids.into_iter().map(|id| stored_id!(UploadId, id)).collect()
    }

    #[tracing::instrument(skip(self))]
    async fn prune_tombstones(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut conn = self.conn().await?;
        let pruned =
            diesel::delete(upload_tombstones::table.filter(upload_tombstones::at.lt(before)))
                .execute(&mut conn)
                .await
                .map_err(db_error)?;
        Ok(pruned as u64)
    }
}
