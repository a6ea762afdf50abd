//! `BacklogProbe`: what waits in the database, and this process's pool.

use async_trait::async_trait;
use diesel::dsl::{count_star, min};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use time::OffsetDateTime;

use roughy_app::ports::{Backlog, BacklogProbe, PoolStats, RepoError};

use super::PgRepository;
use crate::error::db_error;
use crate::schema::{jobs, purge_outbox, uploads, webhook_deliveries};

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl BacklogProbe for PgRepository {
    #[tracing::instrument(skip(self))]
    async fn backlog(&self) -> Result<Backlog, RepoError> {
        let mut conn = self.conn().await?;
        let active_uploads: i64 = uploads::table
            .filter(uploads::state.eq("active"))
            .select(count_star())
            .first(&mut conn)
            .await
            .map_err(db_error)?;
        let (queued_jobs, oldest_job_at): (i64, Option<OffsetDateTime>) = jobs::table
            .select((count_star(), min(jobs::available_at)))
            .first(&mut conn)
            .await
            .map_err(db_error)?;
        let pending_purges: i64 = purge_outbox::table
            .select(count_star())
            .first(&mut conn)
            .await
            .map_err(db_error)?;
        let pending_deliveries: i64 = webhook_deliveries::table
            .filter(webhook_deliveries::state.eq("pending"))
            .select(count_star())
            .first(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(Backlog {
            active_uploads: count(active_uploads),
            queued_jobs: count(queued_jobs),
            oldest_job_at,
            pending_purges: count(pending_purges),
            pending_deliveries: count(pending_deliveries),
        })
    }

    fn pool(&self) -> Option<PoolStats> {
        let status = self.pool().status();
        let size = u64::try_from(status.size).unwrap_or(0);
        let available = u64::try_from(status.available).unwrap_or(0);
        Some(PoolStats {
            max_size: u64::try_from(status.max_size).unwrap_or(0),
            size,
            in_use: size.saturating_sub(available),
            waiting: u64::try_from(status.waiting).unwrap_or(0),
        })
    }
}
