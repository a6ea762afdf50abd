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

/// What a fenced write of an upload reads first, under the lease `fence`: the upload, locked,
/// and with `with_asset` its asset, locked after it. `LeaseLost` unless the fence still holds
/// the upload's lock, else `NotFound` unless the upload is active.
///
/// The lock row is locked `FOR SHARE` until the transaction ends, so no takeover can commit
/// between this check and the caller's write. The reads go out together (pipelined on the
/// connection, executed in order, so the rows are locked in the usual order): one round trip
/// instead of up to three.
async fn lock_fenced(
    conn: &mut AsyncPgConnection,
    id: &UploadId,
    fence: &UploadFence,
    with_asset: bool,
) -> Result<(Upload, Option<Asset>), StoreError> {
    let conn: &AsyncPgConnection = conn;
    let (mut for_fence, mut for_upload, mut for_asset) = (conn, conn, conn);
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
    let asset = async {
        if !with_asset {
            return None;
        }
        let of_upload = uploads::table.find(id.as_str()).select(uploads::asset_id);
        Some(
            assets::table
                .filter(assets::id.eq_any(of_upload))
                .select(AssetRow::as_select())
                .for_update()
                .first::<AssetRow>(&mut for_asset)
                .await,
        )
    };
    let (held, row, asset) = futures::join!(held, row, asset);
    // In the order sent: after a failure, the later reads only report the aborted transaction.
    if held.optional()?.is_none() {
        return Err(RepoError::LeaseLost.into());
    }
    let upload = Upload::try_from(row.optional()?.ok_or(RepoError::NotFound)?)?;
    let asset = match asset {
        Some(asset) => Some(Asset::try_from(
            asset.optional()?.ok_or(RepoError::NotFound)?,
        )?),
        None => None,
    };
    Ok((upload, asset))
}

/// [`lock_fenced`] with the asset.
async fn lock_fenced_with_asset(
    conn: &mut AsyncPgConnection,
    id: &UploadId,
    fence: &UploadFence,
) -> Result<(Upload, Asset), StoreError> {
    let (upload, asset) = lock_fenced(conn, id, fence, true).await?;
    Ok((upload, asset.ok_or(RepoError::NotFound)?))
}

/// Writes what the domain decided, in the caller's transaction: the upload's offset, expiry,
/// state and staging; the asset's lifecycle columns, when it changed; and a processing job,
/// when one is queued. The statements go out together (pipelined): one round trip.
async fn write(
    conn: &mut AsyncPgConnection,
    upload: &Upload,
    asset: Option<&Asset>,
    job: Option<NewJob<'_>>,
) -> Result<(), StoreError> {
    let row = UploadRow::try_from(upload)?;
    let changes = asset.map(AssetChanges::try_from).transpose()?;
    let conn: &AsyncPgConnection = conn;
    let (mut for_upload, mut for_asset, mut for_job) = (conn, conn, conn);
    let saved = Prepared(
        diesel::update(uploads::table.find(upload.id.as_str())).set((
            uploads::upload_offset.eq(row.upload_offset),
            uploads::expires_at.eq(row.expires_at),
            uploads::state.eq(row.state),
            uploads::staging.eq(row.staging),
        )),
    )
    .execute(&mut for_upload);
    let changed = async {
        match (asset, changes) {
            (Some(asset), Some(changes)) => Some(
                Prepared(diesel::update(assets::table.find(asset.id.as_str())).set(changes))
                    .execute(&mut for_asset)
                    .await,
            ),
            _ => None,
        }
    };
    let queued = async {
        match job {
            // Queued with the state change: a crash after the commit still has it.
            Some(job) => Some(
                Prepared(diesel::insert_into(jobs::table).values(job))
                    .execute(&mut for_job)
                    .await,
            ),
            None => None,
        }
    };
    let (saved, changed, queued) = futures::join!(saved, changed, queued);
    saved?;
    changed.transpose()?;
    queued.transpose()?;
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
            let (mut upload, mut asset) = lock_fenced_with_asset(conn, id, fence).await?;
            upload.stage(staging.clone()).map_err(conflict)?;
            asset.identify(format).map_err(conflict)?;
            write(conn, &upload, Some(&asset), None).await
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
            let (mut upload, mut asset) =
                lock_fenced(conn, id, fence, identified.is_some()).await?;
            upload
                .advance(offset, staging.clone(), expires_at)
                .map_err(conflict)?;
            if let (Some(asset), Some(format)) = (asset.as_mut(), identified) {
                asset.identify(format).map_err(conflict)?;
            }
            write(conn, &upload, asset.as_ref(), None).await
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
            let (mut upload, mut asset) = lock_fenced_with_asset(conn, id, fence).await?;
            if let Some(format) = identified {
                asset.identify(format).map_err(conflict)?;
            }
            upload.complete(staging.clone()).map_err(conflict)?;
            asset.finish_upload(upload.length.get()).map_err(conflict)?;
            let job = NewJob {
                asset_id: asset.id.as_str(),
                available_at: at,
                attempts: 0,
            };
            write(conn, &upload, Some(&asset), Some(job)).await?;
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
                let upload = match lock_fenced(conn, id, fence, false).await {
                    Ok((upload, _)) => upload,
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
