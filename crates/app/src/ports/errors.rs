//! Errors at the seams: what went wrong below a port.

use std::fmt;

use thiserror::Error;

/// What went wrong below a port: a message for the logs and, when there is one, the error it
/// came from (so the one place that logs a failure can show the whole chain).
#[derive(Debug)]
pub struct Cause {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Cause {
    /// A cause with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A cause that keeps the error it came from.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The message, without the sources.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message followed by each source's, as `message: source: its source`, for logs.
    pub fn chain(&self) -> String {
        let mut chain = self.message.clone();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            let text = e.to_string();
            // Adapters often put the source's text in the message already.
            if !chain.ends_with(&text) {
                chain.push_str(": ");
                chain.push_str(&text);
            }
            next = e.source();
        }
        chain
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// A repository failure, translated from the infrastructure at the adapter's seam.
#[derive(Debug, Error)]
pub enum RepoError {
    /// A row the operation depends on is not there (e.g. the project was deleted meanwhile).
    #[error("not found")]
    NotFound,
    /// A uniqueness or state conflict.
    #[error("conflict: {0}")]
    Conflict(#[source] Cause),
    /// The store is unreachable or exhausted (pool timeout): retryable, 503.
    #[error("repository unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A write under an upload's lock whose [`UploadFence`](super::UploadFence) no longer holds the lock (it was
    /// taken over as stale, or released): nothing was written.
    #[error("the upload's lock is no longer held by this writer")]
    LeaseLost,
    /// An account limit would be exceeded (too many pending uploads): nothing was stored.
    #[error("the account has too many pending uploads")]
    TooManyPending,
    /// Anything else.
    #[error("repository failure: {0}")]
    Internal(#[source] Cause),
}

/// A blob storage failure.
#[derive(Debug, Error)]
pub enum BlobError {
    /// The object or staged upload does not exist.
    #[error("blob not found")]
    NotFound,
    /// The store is unreachable: retryable.
    #[error("blob storage unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// The store has no room left (a full disk, a quota): retryable once space is freed.
    #[error("blob storage is full: {0}")]
    InsufficientStorage(#[source] Cause),
    /// Anything else (I/O errors included).
    #[error("blob storage failure: {0}")]
    Internal(#[source] Cause),
}
