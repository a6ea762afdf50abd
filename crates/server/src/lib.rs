//! The `roughy-server` wiring: configuration from the environment, adapters chosen from it,
//! the HTTP server, background workers (processing, reaper) and graceful shutdown.
//!
//! `main` stays thin: `Config::from_env()` → `Application::build()` → `run()`. Tests build the
//! same `Application` with a port-0 listener and their own overrides.

pub mod config;
mod repository;
mod startup;
mod workers;

pub use config::{
    BlobLocation, Config, ConfigError, DatabaseConfig, HttpConfig, MediaConfig, RepositoryKind,
    Role, StorageConfig, UploadsConfig,
};
pub use startup::{Application, Overrides};
