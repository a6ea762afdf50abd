#![doc = include_str!("../README.md")]

pub mod clock;
pub mod error;
pub mod pagination;
pub mod ports;
mod signal;
mod use_cases;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::IngestError;
pub use pagination::{Cursor, Page, PageRequest};
pub use signal::NotifyJobSignal;
pub use use_cases::{
    AssetFilter, CreateAsset, Ingest, IngestConfig, IngestPorts, KeyedRequest, MintedKey,
    UploadView,
};
