//! The throwaway cluster of this test run, and a fresh database per test.

use roughy_postgres::{PgConfig, PgRepository};

/// A new, empty database: its URL.
pub async fn fresh_url() -> String {
    roughy_postgres::testing::fresh_database_url().await
}

/// A small pool: many tests run at once against one cluster.
pub fn test_config(url: String) -> PgConfig {
    PgConfig::new(url).with_max_size(4)
}

/// A repository over a new, migrated database.
pub async fn fresh_repository() -> PgRepository {
    PgRepository::connect(&test_config(fresh_url().await))
        .await
        .expect("the repository connects and migrates")
}
