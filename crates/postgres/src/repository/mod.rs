//! [`PgRepository`]: every repository port over one connection pool.
//!
//! Each port method is one transaction (or one statement). Methods that change several rows
//! lock what they read (`SELECT … FOR UPDATE`) and call the pure rules of `roughy-domain`
//! (`Asset` transitions, `billing::settle`, `billing::activation_plan`) inside the transaction,
//! so the rule lives once and the atomicity lives here. A refused transition returns an error,
//! which rolls the whole transaction back.
//!
//! Rows are always locked in the same order, so two use cases never wait on each other in a
//! cycle: asset, then its job, then its account (`complete_job`); account, then its waiting
//! assets (`top_up`, which never touches a `processing` asset); a deletion locks the asset and
//! its cascade takes the job.

mod accounts;
mod assets;
mod backlog;
mod idempotency;
mod jobs;
mod projects;
mod purges;
mod uploads;
mod webhooks;

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel::ConnectionError;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use thiserror::Error;
use time::OffsetDateTime;

use roughy_app::ports::{GoneReason, HealthCheck, Purge, RepoError};

use crate::config::{redact, PgConfig};
use crate::error::{pool_error, StoreError};
use roughy_domain::Asset;

use crate::rows::{gone_reason_name, purge, AssetRow};
use crate::schema::{purge_outbox, upload_tombstones};

/// The SQL migrations of `migrations/` at the workspace root, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Key of the advisory lock that serialises migrations when several processes start at once.
const MIGRATION_LOCK: i64 = 0x526f_7567_6879; // "Roughy"

/// Why the repository could not be set up.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The database could not be reached.
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The cause.
        #[source]
        source: ConnectionError,
    },
    /// Applying the migrations failed.
    #[error("cannot migrate the database schema: {0}")]
    Migrate(String),
    /// The pool could not be built.
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
}

/// The PostgreSQL adapter of `AccountRepo`, `ProjectRepo`, `AssetRepo`, `UploadRepo`,
/// `JobRepo`, `PurgeQueue`, `IdempotencyKeys`, `WebhookRepo` and `HealthCheck`.
///
/// Clones share one pool, so one value can be handed to every port.
#[derive(Clone)]
pub struct PgRepository {
    pool: Pool<AsyncPgConnection>,
}

impl fmt::Debug for PgRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PgRepository")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .field("available", &status.available)
            .finish()
    }
}

type Connection = Object<AsyncPgConnection>;

impl PgRepository {
    /// Connects, applies the pending migrations (serialised across processes by an advisory
    /// lock) and builds the pool.
    ///
    /// # Errors
    /// `ConnectError` when the database cannot be reached, the schema cannot be migrated or
    /// the pool cannot be built.
    #[tracing::instrument(skip_all, fields(url = %redact(&config.url)))]
    pub async fn connect(config: &PgConfig) -> Result<Self, ConnectError> {
        migrate(&config.url).await?;
        let pool = build_pool(config)?;
        let repo = Self { pool };
        // Fail start-up on a bad setting (e.g. statement_timeout) rather than on first use.
        drop(
            repo.conn()
                .await
                .map_err(|e| ConnectError::Pool(e.to_string()))?,
        );
        tracing::info!("connected to PostgreSQL");
        Ok(repo)
    }

    /// A pooled connection. Every pool failure is `Unavailable` (503).
    pub(crate) async fn conn(&self) -> Result<Connection, RepoError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// The pool, for adapters that share it (the upload locks).
    pub(crate) fn pool(&self) -> &Pool<AsyncPgConnection> {
        &self.pool
    }
}

/// Builds the pool with explicit size and timeouts; each new connection gets the statement
/// timeout, so a runaway query cannot hold a connection (and its locks) forever.
fn build_pool(config: &PgConfig) -> Result<Pool<AsyncPgConnection>, ConnectError> {
    let statement_timeout_ms = config.statement_timeout.as_millis();
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    // Every checkout tests the connection (`SELECT 1`): a connection the server terminated a
    // moment ago is replaced instead of failing the caller's first statement. `Fast` saved that
    // round trip but let such a connection fail a job's release, stranding the job until its
    // lease ran out (a fresh-clone CI run of the connection-termination fault test).
    manager_config.recycling_method = RecyclingMethod::Verified;
    manager_config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        Box::pin(async move {
            let mut conn = AsyncPgConnection::establish(&url).await?;
            diesel::sql_query(format!("SET statement_timeout = {statement_timeout_ms}"))
                .execute(&mut conn)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        &config.url,
        manager_config,
    );
    Pool::builder(manager)
        .max_size(config.max_size)
        .wait_timeout(Some(config.wait_timeout))
        .create_timeout(Some(config.create_timeout))
        .recycle_timeout(Some(config.recycle_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| ConnectError::Pool(e.to_string()))
}

/// Applies the pending migrations over a dedicated connection.
async fn migrate(url: &str) -> Result<(), ConnectError> {
    let mut conn =
        AsyncPgConnection::establish(url)
            .await
            .map_err(|source| ConnectError::Connect {
                url: redact(url),
                source,
            })?;
    // Two processes starting together must not both create the tables.
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .await
        .map_err(|e| ConnectError::Migrate(e.to_string()))?;
    // Diesel's migration harness is synchronous: run it through the wrapper on a blocking
    // thread, so no libpq is linked and the async workers are not blocked.
    let wrapper: AsyncConnectionWrapper<AsyncPgConnection> = AsyncConnectionWrapper::from(conn);
    let (applied, wrapper) = tokio::task::spawn_blocking(move || {
        let mut wrapper = wrapper;
        let applied = wrapper
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.len())
            .map_err(|e| e.to_string());
        (applied, wrapper)
    })
    .await
    .map_err(|e| ConnectError::Migrate(format!("the migration task failed: {e}")))?;
    let mut conn = wrapper.into_inner();
    // The lock also goes with the connection; unlocking is just quicker.
    let _ = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .await;
    let applied = applied.map_err(ConnectError::Migrate)?;
    if applied > 0 {
        tracing::info!(applied, "applied database migrations");
    }
    Ok(())
}

#[async_trait]
impl HealthCheck for PgRepository {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn check(&self) -> Result<(), String> {
        let mut conn = self.conn().await.map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Takes the account row's lock for the rest of the transaction (`FOR NO KEY UPDATE`: rows
/// referencing the account can still be written), so an account's creates that check a limit
/// take turns and the count they read holds. `NotFound` when there is no such account.
async fn lock_account(conn: &mut AsyncPgConnection, id: &str) -> Result<(), StoreError> {
    let account: Option<String> = lock_account_query(id).first(conn).await.optional()?;
    match account {
        Some(_) => Ok(()),
        None => Err(RepoError::NotFound.into()),
    }
}

/// The statement of [`lock_account`], for a caller that pipelines it with others: it answers
/// the account's id, or no row.
fn lock_account_query(
    id: &str,
) -> diesel::dsl::ForNoKeyUpdate<
    diesel::dsl::Select<
        diesel::dsl::Find<crate::schema::accounts::table, &str>,
        crate::schema::accounts::id,
    >,
> {
    use crate::schema::accounts;
    accounts::table
        .find(id)
        .select(accounts::id)
        .for_no_key_update()
}

/// A tombstone, written when an upload's rows are deleted.
#[derive(Debug, Insertable)]
#[diesel(table_name = upload_tombstones)]
struct NewTombstone<'a> {
    id: &'a str,
    account_id: &'a str,
    reason: &'a str,
    at: OffsetDateTime,
}

/// An outbox entry, written with the deletion of rows whose bytes must be purged.
#[derive(Debug, Insertable)]
#[diesel(table_name = purge_outbox)]
struct NewPurge<'a> {
    asset_id: &'a str,
    upload_id: &'a str,
    created_at: OffsetDateTime,
    staging: &'a str,
}

/// Records purges of `(asset id, upload id, staging)` in the outbox, in the caller's
/// transaction, and returns them.
async fn record_purges(
    conn: &mut AsyncPgConnection,
    entries: &[(&str, &str, &str)],
    at: OffsetDateTime,
) -> Result<Vec<Purge>, StoreError> {
    let rows: Vec<_> = entries
        .iter()
        .map(|&(asset_id, upload_id, staging)| NewPurge {
            asset_id,
            upload_id,
            created_at: at,
            staging,
        })
        .collect();
    diesel::insert_into(purge_outbox::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    entries
        .iter()
        .map(|&(asset, upload, staging)| {
            purge(asset.to_owned(), upload.to_owned(), staging.to_owned()).map_err(StoreError::from)
        })
        .collect()
}

/// What a deletion of assets returns: each deleted row.
type Deleted = Vec<AssetRow>;

/// The staging state of the uploads of `asset_ids`, by upload id, with the upload rows locked.
/// Read before deleting the assets: the cascade takes the upload rows with them, and the purge
/// must know what to abort.
async fn stagings_of(
    conn: &mut AsyncPgConnection,
    asset_ids: &[&str],
) -> Result<HashMap<String, String>, StoreError> {
    use crate::schema::uploads;
    let rows: Vec<(String, String)> = uploads::table
        .filter(uploads::asset_id.eq_any(asset_ids))
        .select((uploads::id, uploads::staging))
        .for_update()
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Finishes a deletion of assets (their uploads and jobs went by cascade): leaves a tombstone
/// for each upload, records each purge in the outbox and announces the deletion (the event of
/// `reason`) to the account's webhooks, in the caller's transaction.
async fn bury(
    conn: &mut AsyncPgConnection,
    deleted: Deleted,
    stagings: &HashMap<String, String>,
    reason: GoneReason,
    at: OffsetDateTime,
) -> Result<Vec<Purge>, StoreError> {
    let staging_of = |upload: &str| stagings.get(upload).map_or("", String::as_str);
    if deleted.is_empty() {
        return Ok(Vec::new());
    }
    let assets = deleted
        .iter()
        .map(|row| Asset::try_from(row.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    // One deletion is one account's (a project's, an asset's, an upload's).
    webhooks::announce(conn, reason.event(), &assets, at).await?;
    let reason = gone_reason_name(reason);
    let tombstones: Vec<_> = deleted
        .iter()
        .map(|row| NewTombstone {
            id: &row.upload_id,
            account_id: &row.account_id,
            reason,
            at,
        })
        .collect();
    diesel::insert_into(upload_tombstones::table)
        .values(&tombstones)
        .on_conflict(upload_tombstones::id)
        .do_update()
        .set((
            upload_tombstones::account_id.eq(excluded(upload_tombstones::account_id)),
            upload_tombstones::reason.eq(excluded(upload_tombstones::reason)),
            upload_tombstones::at.eq(excluded(upload_tombstones::at)),
        ))
        .execute(conn)
        .await?;
    let entries: Vec<_> = deleted
        .iter()
        .map(|row| {
            let staging = staging_of(&row.upload_id);
            (row.id.as_str(), row.upload_id.as_str(), staging)
        })
        .collect();
    record_purges(conn, &entries, at).await
}
