//! Test support (feature `testing`): a fresh database per test on the throwaway cluster that
//! every test process of a run shares (`roughy_embedded_postgres::testing::cluster`), and raw
//! SQL for fault injection.

use roughy_domain::ids::random_base62;
use roughy_embedded_postgres::testing::cluster;

/// A new, empty database of the shared cluster: its URL.
///
/// # Panics
/// When the cluster cannot start or the database cannot be created.
pub async fn fresh_database_url() -> String {
    let name = format!("t_{}", random_base62(20).to_ascii_lowercase());
    let cluster = cluster();
    if let Err(e) = cluster.create_database(&name).await {
        panic!("the test database {name} must be created: {e}");
    }
    cluster.url_for(&name)
}

/// Runs `sql` (one or more statements) on the database at `url`: fault injection for tests
/// (e.g. a trigger that fails a commit once).
///
/// # Panics
/// When the database cannot be reached or a statement fails.
pub async fn execute_sql(url: &str, sql: &str) {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    conn.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("run {sql:?}: {e}"));
}
