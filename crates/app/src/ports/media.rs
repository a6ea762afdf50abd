//! Media: identifying and measuring uploaded bytes.

use async_trait::async_trait;
use thiserror::Error;

use roughy_domain::{AssetFailure, DurationMs, MediaFormat};

use super::BlobReader;

#[cfg(test)]
use mockall::automock;

/// What probing measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaInfo {
    /// The true playing time.
    pub duration: DurationMs,
    /// The format, when probing refined the sniffed one (MKV without video → MKA).
    pub format: MediaFormat,
}

/// Why probing did not produce a duration.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// The media is broken for good: the asset fails with this code and message.
    #[error("{}: {}", .0.code, .0.message)]
    Media(AssetFailure),
    /// Could not read the bytes right now: try again later.
    #[error("probe could not run: {0}")]
    Transient(String),
}

/// Identifies and measures media.
#[cfg_attr(test, automock)]
#[async_trait]
pub trait MediaInspector: Send + Sync {
    /// The supported format of a first chunk's head (≥ 64 bytes), or `None`.
    fn sniff(&self, head: &[u8]) -> Option<MediaFormat>;
    /// Measures the stored object. Runs the blocking work off the async workers.
    async fn probe(
        &self,
        reader: Box<dyn BlobReader>,
        sniffed: MediaFormat,
    ) -> Result<MediaInfo, ProbeError>;
}
