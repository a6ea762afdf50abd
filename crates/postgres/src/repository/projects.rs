//! Projects, and the cascade that deletes their assets.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::OffsetDateTime;

use roughy_app::ports::{GoneReason, ProjectRepo, Purge, RepoError};
use roughy_app::{Cursor, Page, PageRequest};
use roughy_domain::{AccountId, Project, ProjectId};

use super::{bury, stagings_of, Deleted, PgRepository};
use crate::error::{db_error, StoreError};
use crate::rows::{overfetch, AssetRow, ProjectRow};
use crate::schema::{assets, projects};

#[async_trait]
impl ProjectRepo for PgRepository {
    #[tracing::instrument(skip_all, fields(project = %project.id, account = %project.account_id))]
    async fn create_project(&self, project: &Project) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        // A missing account is a foreign key violation, translated to `NotFound`.
        diesel::insert_into(projects::table)
            .values(ProjectRow::from(project))
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(project = %id, account = %account))]
    async fn get_project(
        &self,
        account: &AccountId,
        id: &ProjectId,
    ) -> Result<Option<Project>, RepoError> {
        let mut conn = self.conn().await?;
        projects::table
            .find(id.as_str())
            .filter(projects::account_id.eq(account.as_str()))
            .select(ProjectRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?
            .map(Project::try_from)
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(account = %account, limit = page.limit))]
    async fn list_projects(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Project>, RepoError> {
        let mut conn = self.conn().await?;
        let mut query = projects::table
            .filter(projects::account_id.eq(account.as_str()))
            .select(ProjectRow::as_select())
            .order((projects::created_at.desc(), projects::id.desc()))
            .limit(overfetch(page.limit))
            .into_boxed();
        if let Some(cursor) = &page.cursor {
            query = query.filter(
                projects::created_at
                    .lt(cursor.created_at)
                    .or(projects::created_at
                        .eq(cursor.created_at)
                        .and(projects::id.lt(cursor.id.as_str()))),
            );
        }
        let rows = query.load(&mut conn).await.map_err(db_error)?;
        let items = rows
            .into_iter()
            .map(Project::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit, |p| Cursor {
            created_at: p.created_at,
            id: p.id.as_str().to_owned(),
        }))
    }

    #[tracing::instrument(skip_all, fields(project = %id, account = %account))]
    async fn delete_project(
        &self,
        account: &AccountId,
        id: &ProjectId,
        at: OffsetDateTime,
    ) -> Result<Option<Vec<Purge>>, RepoError> {
        let mut conn = self.conn().await?;
        let purges = conn
            .transaction::<_, StoreError, _>(async |conn| {
                // Locking the project first keeps new assets out (their foreign key check
                // waits on this lock), so the assets deleted below are all of them.
                let found: Option<String> = projects::table
                    .find(id.as_str())
                    .filter(projects::account_id.eq(account.as_str()))
                    .select(projects::id)
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                if found.is_none() {
                    return Ok(None);
                }
                let asset_ids: Vec<String> = assets::table
                    .filter(assets::project_id.eq(id.as_str()))
                    .select(assets::id)
                    .load(conn)
                    .await?;
                let asset_ids: Vec<&str> = asset_ids.iter().map(String::as_str).collect();
                let stagings = stagings_of(conn, &asset_ids).await?;
                let deleted: Deleted =
                    diesel::delete(assets::table.filter(assets::project_id.eq(id.as_str())))
                        .returning(AssetRow::as_returning())
                        .get_results(conn)
                        .await?;
                let purges = bury(conn, deleted, &stagings, GoneReason::AssetDeleted, at).await?;
                diesel::delete(projects::table.find(id.as_str()))
                    .execute(conn)
                    .await?;
                Ok(Some(purges))
            })
            .await?;
        Ok(purges)
    }
}
