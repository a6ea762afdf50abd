//! Projects.

use roughy_domain::{AccountId, Project, ProjectId, ProjectName};

use super::Ingest;
use crate::error::IngestError;
use crate::pagination::{Page, PageRequest};

impl Ingest {
    /// Creates a project.
    ///
    /// # Errors
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn create_project(
        &self,
        account: &AccountId,
        name: Option<ProjectName>,
    ) -> Result<Project, IngestError> {
        let project = Project {
            id: ProjectId::generate(),
            account_id: account.clone(),
            name,
            created_at: roughy_domain::time_format::to_micros(self.ports.clock.now()),
        };
        self.ports.projects.create_project(&project).await?;
        Ok(project)
    }

    /// The caller's project.
    ///
    /// # Errors
    /// `IngestError::NotFound` when the project does not exist or is another account's;
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn get_project(
        &self,
        account: &AccountId,
        id: &ProjectId,
    ) -> Result<Project, IngestError> {
        self.ports
            .projects
            .get_project(account, id)
            .await?
            .ok_or(IngestError::NotFound)
    }

    /// The caller's projects, newest first.
    ///
    /// # Errors
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn list_projects(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Project>, IngestError> {
        Ok(self.ports.projects.list_projects(account, page).await?)
    }

    /// Deletes a project and its assets (as deleting each asset would).
    ///
    /// # Errors
    /// `IngestError::NotFound` when the project does not exist or is another account's;
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn delete_project(
        &self,
        account: &AccountId,
        id: &ProjectId,
    ) -> Result<(), IngestError> {
        let at = self.ports.clock.now();
        let purges = self
            .ports
            .projects
            .delete_project(account, id, at)
            .await?
            .ok_or(IngestError::NotFound)?;
        for purge in &purges {
            self.purge_after_writer(purge).await;
        }
        Ok(())
    }
}
