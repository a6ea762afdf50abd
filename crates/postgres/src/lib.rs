#![doc = include_str!("../README.md")]

mod config;
mod error;
mod locks;
mod prepared;
mod repository;
mod rows;
mod schema;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::PgConfig;
pub use locks::{PgUploadLease, PgUploadLocks, UploadLockSettings};
pub use repository::{ConnectError, PgRepository, MIGRATIONS};
