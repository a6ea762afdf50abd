//! `PurgeQueue`: the outbox of stored bytes to remove after deletions.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use roughy_app::ports::{Purge, PurgeQueue, RepoError};

use super::PgRepository;
use crate::error::db_error;
use crate::rows::purge;
use crate::schema::purge_outbox;

#[async_trait]
impl PurgeQueue for PgRepository {
    #[tracing::instrument(skip(self))]
    async fn pending_purges(&self, limit: usize) -> Result<Vec<Purge>, RepoError> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, String, String)> = purge_outbox::table
            .order(purge_outbox::seq.asc())
            .select((
                purge_outbox::asset_id,
                purge_outbox::upload_id,
                purge_outbox::staging,
            ))
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .load(&mut conn)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|(asset, upload, staging)| purge(asset, upload, staging))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(asset = %purge.asset_id))]
    async fn purge_done(&self, purge: &Purge) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        diesel::delete(
            purge_outbox::table
                .filter(purge_outbox::asset_id.eq(purge.asset_id.as_str()))
                .filter(purge_outbox::upload_id.eq(purge.upload_id.as_str())),
        )
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
