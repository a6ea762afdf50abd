//! Choosing the repository adapter: PostgreSQL (external via `DATABASE_URL`, or an embedded
//! cluster under the data dir), or in memory.

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;

use roughy_app::ports::{
    AccountRepo, AssetRepo, BacklogProbe, HealthCheck, IdempotencyKeys, JobRepo, ProjectRepo,
    PurgeQueue, UploadLocks, UploadRepo, WebhookRepo,
};
use roughy_embedded_postgres::{EmbeddedError, EmbeddedPostgres};
use roughy_memory::MemoryRepository;
use roughy_postgres::{PgConfig, PgRepository, PgUploadLocks};

use std::path::Path;

use crate::config::{DatabaseConfig, RepositoryKind};

/// The repository ports, served by one adapter.
pub struct Repository {
    pub accounts: Arc<dyn AccountRepo>,
    pub projects: Arc<dyn ProjectRepo>,
    pub assets: Arc<dyn AssetRepo>,
    pub uploads: Arc<dyn UploadRepo>,
    pub jobs: Arc<dyn JobRepo>,
    pub purges: Arc<dyn PurgeQueue>,
    pub idempotency: Arc<dyn IdempotencyKeys>,
    pub webhooks: Arc<dyn WebhookRepo>,
    pub locks: Arc<dyn UploadLocks>,
    /// What a metrics scrape asks of it.
    pub backlog: Arc<dyn BacklogProbe>,
    /// What `/readyz` asks of it.
    pub health: Arc<dyn HealthCheck>,
    /// The embedded cluster this process started, stopped on shutdown.
    pub embedded: Option<EmbeddedPostgres>,
}

/// The in-memory store always answers.
struct AlwaysHealthy;

#[async_trait::async_trait]
impl HealthCheck for AlwaysHealthy {
    fn name(&self) -> &'static str {
        "memory repository"
    }

    async fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Repository {
    /// Opens the configured adapter: connects (and migrates) PostgreSQL, starting the embedded
    /// cluster first when `DATABASE_URL` is unset.
    pub async fn open(config: &DatabaseConfig, data_dir: &Path) -> anyhow::Result<Self> {
        match config.repository {
            RepositoryKind::Memory => {
                tracing::warn!("repository: in memory (data is lost when the process stops)");
                let repo = Arc::new(MemoryRepository::new());
                Ok(Self {
                    accounts: repo.clone(),
                    projects: repo.clone(),
                    assets: repo.clone(),
                    uploads: repo.clone(),
                    jobs: repo.clone(),
                    idempotency: repo.clone(),
                    webhooks: repo.clone(),
                    backlog: repo.clone(),
                    locks: Arc::new(repo.locks()),
                    purges: repo,
                    health: Arc::new(AlwaysHealthy),
                    embedded: None,
                })
            }
            RepositoryKind::Postgres => {
                let (url, embedded) = match &config.url {
                    Some(url) => {
                        tracing::info!("repository: PostgreSQL at DATABASE_URL");
                        (url.expose_secret().to_owned(), None)
                    }
                    None => {
                        let dir = data_dir.join("pg");
                        let cluster = match EmbeddedPostgres::start(&dir).await {
                            Ok(cluster) => cluster,
                            // Says itself what to do (and main exits 2 on it).
                            Err(e @ EmbeddedError::InUse { .. }) => return Err(e.into()),
                            Err(e) => {
                                return Err(anyhow::Error::new(e).context(format!(
                                    "failed to start the embedded PostgreSQL in {} (install \
                                     PostgreSQL, e.g. apt-get install postgresql, or set \
                                     DATABASE_URL)",
                                    dir.display()
                                )))
                            }
                        };
                        tracing::info!(dir = %dir.display(), "repository: embedded PostgreSQL (unix socket only)");
                        (cluster.url(), Some(cluster))
                    }
                };
                let pg = PgConfig::new(url).with_max_size(config.pool_size);
                let repo = Arc::new(
                    PgRepository::connect(&pg)
                        .await
                        .context("failed to connect to PostgreSQL (DATABASE_URL) and migrate")?,
                );
                Ok(Self {
                    accounts: repo.clone(),
                    projects: repo.clone(),
                    assets: repo.clone(),
                    uploads: repo.clone(),
                    jobs: repo.clone(),
                    purges: repo.clone(),
                    idempotency: repo.clone(),
                    webhooks: repo.clone(),
                    backlog: repo.clone(),
                    locks: Arc::new(PgUploadLocks::new(&repo)),
                    health: repo,
                    embedded,
                })
            }
        }
    }
}
