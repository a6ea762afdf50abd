#![doc = include_str!("../README.md")]

mod locks;
mod repository;
mod signal;

pub use locks::{InProcessUploadLease, InProcessUploadLocks};
pub use repository::MemoryRepository;
pub use signal::NotifyJobSignal;
