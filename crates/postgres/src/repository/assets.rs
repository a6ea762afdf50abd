//! Assets: create (with the upload), read, list, delete.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;

use roughy_app::ports::{AssetFilter, AssetRepo, GoneReason, Purge, RepoError};
use roughy_app::{Cursor, Page, PageRequest};
use roughy_domain::{AccountId, Asset, AssetId, AssetState, Upload};

use super::{bury, record_purges, stagings_of, Deleted, PgRepository};
use crate::error::{db_error, StoreError};
use crate::prepared::Prepared;
use crate::rows::{overfetch, AssetRow, UploadRow};
use crate::schema::{assets, upload_tombstones, uploads};

#[async_trait]
impl AssetRepo for PgRepository {
    #[tracing::instrument(skip_all, fields(asset = %asset.id, project = %asset.project_id))]
    async fn create_asset(
        &self,
        asset: &Asset,
        upload: &Upload,
        max_pending: u32,
    ) -> Result<(), RepoError> {
        if upload.id != asset.upload_id
            || upload.asset_id != asset.id
            || upload.account_id != asset.account_id
        {
            return Err(RepoError::Conflict(
                format!("upload {} does not belong to asset {}", upload.id, asset.id).into(),
            ));
        }
        let asset_row = AssetRow::try_from(asset)?;
        let upload_row = UploadRow::try_from(upload)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            // Every statement goes out at once (pipelined on the connection, executed in
            // order): one round trip instead of five. Their answers are read in order too, and
            // any refusal rolls the whole transaction back, so nothing after it counts.
            let conn: &AsyncPgConnection = conn;
            let (mut c1, mut c2, mut c3, mut c4, mut c5) = (conn, conn, conn, conn, conn);
            let account = asset.account_id.as_str();
            let (locked, pending, asset_inserted, buried, upload_inserted) = futures::join!(
                // Creates of one account take turns on its row, so the count below cannot be
                // overtaken by a concurrent create (the limit holds exactly).
                super::lock_account_query(account).first::<String>(&mut c1),
                assets::table
                    .filter(assets::account_id.eq(account))
                    .filter(assets::state.eq(AssetState::PendingUpload.as_str()))
                    .count()
                    .get_result::<i64>(&mut c2),
                // A project that is not the asset's account's fails the (project_id,
                // account_id) foreign key: `NotFound`. Inserting first keeps that answer ahead
                // of a conflict.
                Prepared(diesel::insert_into(assets::table).values(&asset_row)).execute(&mut c3),
                // A tombstoned upload id stays taken: it must keep answering 410.
                upload_tombstones::table
                    .find(upload.id.as_str())
                    .count()
                    .get_result::<i64>(&mut c4),
                Prepared(diesel::insert_into(uploads::table).values(&upload_row)).execute(&mut c5),
            );
            if locked.optional()?.is_none() {
                return Err(RepoError::NotFound.into());
            }
            if pending? >= i64::from(max_pending) {
                return Err(RepoError::TooManyPending.into());
            }
            asset_inserted?;
            if buried? > 0 {
                return Err(RepoError::Conflict(
                    format!("upload {} existed before", upload.id).into(),
                )
                .into());
            }
            upload_inserted?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(asset = %id, account = %account))]
    async fn get_asset(
        &self,
        account: &AccountId,
        id: &AssetId,
    ) -> Result<Option<Asset>, RepoError> {
        let mut conn = self.conn().await?;
        assets::table
            .find(id.as_str())
            .filter(assets::account_id.eq(account.as_str()))
            .select(AssetRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?
            .map(Asset::try_from)
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(account = %account, limit = page.limit))]
    async fn list_assets(
        &self,
        account: &AccountId,
        filter: &AssetFilter,
        page: &PageRequest,
    ) -> Result<Page<Asset>, RepoError> {
        let mut conn = self.conn().await?;
        let mut query = assets::table
            .filter(assets::account_id.eq(account.as_str()))
            .select(AssetRow::as_select())
            .order((assets::created_at.desc(), assets::id.desc()))
            .limit(overfetch(page.limit))
            .into_boxed();
        if let Some(project) = &filter.project_id {
            query = query.filter(assets::project_id.eq(project.as_str()));
        }
        if let Some(state) = filter.state {
            query = query.filter(assets::state.eq(state.as_str()));
        }
        if let Some(cursor) = &page.cursor {
            query = query.filter(
                assets::created_at
                    .lt(cursor.created_at)
                    .or(assets::created_at
                        .eq(cursor.created_at)
                        .and(assets::id.lt(cursor.id.as_str()))),
            );
        }
        let rows = query.load(&mut conn).await.map_err(db_error)?;
        let items = rows
            .into_iter()
            .map(Asset::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit, |a| Cursor {
            created_at: a.created_at,
            id: a.id.as_str().to_owned(),
        }))
    }

    #[tracing::instrument(skip_all, fields(asset = %id, account = %account))]
    async fn delete_asset(
        &self,
        account: &AccountId,
        id: &AssetId,
        at: OffsetDateTime,
    ) -> Result<Option<Purge>, RepoError> {
        let mut conn = self.conn().await?;
        let purge = conn
            .transaction::<_, StoreError, _>(async |conn| {
                // The upload and the job go by cascade, in this transaction.
                let stagings = stagings_of(conn, &[id.as_str()]).await?;
                let deleted: Deleted = diesel::delete(
                    assets::table
                        .find(id.as_str())
                        .filter(assets::account_id.eq(account.as_str())),
                )
                .returning(AssetRow::as_returning())
                .get_results(conn)
                .await?;
                Ok(bury(conn, deleted, &stagings, GoneReason::AssetDeleted, at)
                    .await?
                    .pop())
            })
            .await?;
        Ok(purge)
    }

    #[tracing::instrument(skip(self))]
    async fn release_failed_bytes(
        &self,
        failed_before: OffsetDateTime,
        at: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Purge>, RepoError> {
        let mut conn = self.conn().await?;
        let purges = conn
            .transaction::<_, StoreError, _>(async |conn| {
                // Another process releasing at the same time skips the rows locked here.
                let due: Vec<(String, String)> = assets::table
                    .filter(assets::state.eq(AssetState::Failed.as_str()))
                    .filter(assets::bytes_purged_at.is_null())
                    .filter(assets::failed_at.lt(failed_before))
                    .order(assets::failed_at.asc())
                    .select((assets::id, assets::upload_id))
                    .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                    .for_update()
                    .skip_locked()
                    .load(conn)
                    .await?;
                if due.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<&str> = due.iter().map(|(id, _)| id.as_str()).collect();
                diesel::update(assets::table.filter(assets::id.eq_any(&ids)))
                    .set(assets::bytes_purged_at.eq(at))
                    .execute(conn)
                    .await?;
                let stagings = stagings_of(conn, &ids).await?;
                let entries: Vec<_> = due
                    .iter()
                    .map(|(asset, upload)| {
                        let staging = stagings.get(upload).map_or("", String::as_str);
                        (asset.as_str(), upload.as_str(), staging)
                    })
                    .collect();
                record_purges(conn, &entries, at).await
            })
            .await?;
        Ok(purges)
    }
}
