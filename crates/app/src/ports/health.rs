//! Health: the dependencies `GET /readyz` asks.

use async_trait::async_trait;

/// A dependency that `GET /readyz` asks (the database, blob storage).
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// The dependency's name, for logs.
    fn name(&self) -> &'static str;
    /// Whether it answers now.
    async fn check(&self) -> Result<(), String>;
}
