#![doc = include_str!("../README.md")]

mod locks;
mod repository;

pub use locks::{InProcessUploadLease, InProcessUploadLocks};
pub use repository::MemoryRepository;
