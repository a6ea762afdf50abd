//! The database section: which repository adapter, and how to reach PostgreSQL.

use secrecy::SecretString;

use super::env::Env;
use super::ConfigError;

/// Which repository adapter holds accounts, projects, assets and the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepositoryKind {
    /// PostgreSQL: `DATABASE_URL`, or an embedded cluster under the data dir when unset.
    Postgres,
    /// In memory: lost when the process stops (demos, tests).
    Memory,
}

/// The repository, handed whole to the wiring that opens it.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `ROUGHY_REPOSITORY` (postgres): `postgres` or `memory`.
    pub repository: RepositoryKind,
    /// `DATABASE_URL` (unset → embedded cluster under `<data dir>/pg`).
    pub url: Option<SecretString>,
    /// `ROUGHY_DB_POOL_SIZE` (16, 1 to 1000): connections per process.
    pub pool_size: usize,
}

impl DatabaseConfig {
    /// Reads and checks the section.
    ///
    /// # Errors
    /// A `ConfigError` naming the first bad variable.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let repository = env.parse("ROUGHY_REPOSITORY", "postgres", |v| match v {
            "postgres" => Ok(RepositoryKind::Postgres),
            "memory" => Ok(RepositoryKind::Memory),
            _ => Err("must be postgres or memory".to_owned()),
        })?;
        let url = match env.var("DATABASE_URL") {
            None => None,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Some(SecretString::from(url))
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "must be a postgres:// URL",
                ))
            }
        };
        Ok(Self {
            repository,
            url,
            pool_size: env.usize("ROUGHY_DB_POOL_SIZE", 16, 1, 1000)?,
        })
    }
}
