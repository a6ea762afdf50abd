//! Download links: short-lived signed URLs.

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;

use roughy_domain::{AssetId, MediaFormat};

use super::BlobError;

/// A download link's signed parameters, as they arrive back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedDownload {
    /// The asset.
    pub asset_id: AssetId,
    /// Its format (gives the `Content-Type`).
    pub format: MediaFormat,
    /// Unix seconds after which the link is refused.
    pub expires: i64,
    /// The signature.
    pub signature: String,
}

/// Short-lived signed download links.
#[async_trait]
pub trait DownloadLinks: Send + Sync + fmt::Debug {
    /// A URL to download the asset, valid until `expires_at` (`now` + the download TTL).
    /// `base` is the service's public URL, for links served by this service.
    async fn link(
        &self,
        base: &str,
        asset: &AssetId,
        format: MediaFormat,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<String, BlobError>;
    /// Whether a link served by this service is authentic and unexpired at `now`.
    fn verify(&self, link: &SignedDownload, now: OffsetDateTime) -> bool;
}
