//! Projects, and the cascade that deletes their assets.

use async_trait::async_trait;
use time::OffsetDateTime;

use roughy_app::ports::{GoneReason, ProjectRepo, Purge, RepoError};
use roughy_app::{Page, PageRequest};
use roughy_domain::{AccountId, AssetId, Project, ProjectId};

use super::{newest_first, MemoryRepository};

#[async_trait]
impl ProjectRepo for MemoryRepository {
    async fn create_project(&self, project: &Project) -> Result<(), RepoError> {
        let mut state = self.state()?;
        if !state.accounts.contains_key(&project.account_id) {
            return Err(RepoError::NotFound);
        }
        if state.projects.contains_key(&project.id) {
            return Err(RepoError::Conflict(
                format!("project {} already exists", project.id).into(),
            ));
        }
        state.projects.insert(project.id.clone(), project.clone());
        Ok(())
    }

    async fn get_project(
        &self,
        account: &AccountId,
        id: &ProjectId,
    ) -> Result<Option<Project>, RepoError> {
        let state = self.state()?;
        Ok(state
            .projects
            .get(id)
            .filter(|p| &p.account_id == account)
            .cloned())
    }

    async fn list_projects(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Project>, RepoError> {
        let state = self.state()?;
        let mine = state.projects.values().filter(|p| &p.account_id == account);
        Ok(newest_first(mine, page, |p| (p.created_at, p.id.as_str())))
    }

    async fn delete_project(
        &self,
        account: &AccountId,
        id: &ProjectId,
        at: OffsetDateTime,
    ) -> Result<Option<Vec<Purge>>, RepoError> {
        let mut state = self.state()?;
        let is_callers = state
            .projects
            .get(id)
            .is_some_and(|p| &p.account_id == account);
        if !is_callers {
            return Ok(None);
        }
        let assets: Vec<AssetId> = state
            .assets
            .values()
            .filter(|a| &a.project_id == id)
            .map(|a| a.id.clone())
            .collect();
        let purges = assets
            .iter()
            .filter_map(|asset| state.remove_asset(asset, GoneReason::AssetDeleted, at))
            .collect();
        state.projects.remove(id);
        Ok(Some(purges))
    }
}
