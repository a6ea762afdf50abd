//! Creating, reading, listing and deleting assets; download links.

use roughy_domain::billing::may_start_upload;
use roughy_domain::{
    AccountId, Asset, AssetId, AssetState, Language, ProjectId, SizeBytes, Upload,
};

use super::Ingest;
use crate::error::IngestError;
use crate::pagination::{Page, PageRequest};
use crate::ports::{AssetFilter, RepoError, UploadEvent};

/// The create command, parsed from the request at the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateAsset {
    /// The owning project.
    pub project_id: ProjectId,
    /// The declared size.
    pub size: SizeBytes,
    /// The language hint.
    pub language: Option<Language>,
    /// Whether (and for which origin) the upload URL carries a token instead of needing the key.
    pub direct: Option<roughy_domain::DirectUpload>,
}

impl Ingest {
    /// Creates an asset in `pending_upload` and opens its TUS upload.
    ///
    /// # Errors
    /// `InsufficientCredits` at a zero-or-below balance (nothing is created);
    /// `ProjectNotFound` when the project is not the caller's; `TooManyPendingUploads` when
    /// the account already has `max_pending_uploads` uploads pending.
    pub async fn create_asset(
        &self,
        account: &AccountId,
        command: CreateAsset,
    ) -> Result<(Asset, Upload), IngestError> {
        if self
            .ports
            .projects
            .get_project(account, &command.project_id)
            .await?
            .is_none()
        {
            return Err(IngestError::ProjectNotFound);
        }
        if !may_start_upload(self.ports.accounts.balance(account).await?) {
            return Err(IngestError::InsufficientCredits);
        }
        let now = roughy_domain::time_format::to_micros(self.ports.clock.now());
        let asset = Asset {
            direct: command.direct,
            ..Asset::new(
                account.clone(),
                command.project_id,
                command.size,
                command.language,
                now,
            )
        };
        let upload = Upload::open(&asset, now, self.config.upload_ttl);
        let limit = self.config.max_pending_uploads;
        match self.ports.assets.create_asset(&asset, &upload, limit).await {
            Ok(()) => {
                self.ports.metrics.upload(UploadEvent::Created, 1);
                Ok((asset, upload))
            }
            Err(RepoError::NotFound) => Err(IngestError::ProjectNotFound),
            Err(RepoError::TooManyPending) => Err(IngestError::TooManyPendingUploads { limit }),
            Err(e) => Err(e.into()),
        }
    }

    /// The caller's asset.
    ///
    /// # Errors
    /// `IngestError::NotFound` when the asset does not exist or is another account's;
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn get_asset(&self, account: &AccountId, id: &AssetId) -> Result<Asset, IngestError> {
        self.ports
            .assets
            .get_asset(account, id)
            .await?
            .ok_or(IngestError::NotFound)
    }

    /// A fresh signed download link for a `ready` asset, `None` in any other state.
    ///
    /// # Errors
    /// When the links adapter cannot sign (e.g. the object store's credentials are
    /// unavailable).
    pub async fn download_link(
        &self,
        base: &str,
        asset: &Asset,
    ) -> Result<Option<String>, IngestError> {
        let Some(format) = asset.format.filter(|_| asset.state == AssetState::Ready) else {
            return Ok(None);
        };
        let now = self.ports.clock.now();
        let expires_at = now + self.config.download_ttl;
        Ok(Some(
            self.ports
                .links
                .link(base, &asset.id, format, now, expires_at)
                .await?,
        ))
    }

    /// The caller's assets, newest first.
    ///
    /// # Errors
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise.
    pub async fn list_assets(
        &self,
        account: &AccountId,
        filter: &AssetFilter,
        page: &PageRequest,
    ) -> Result<Page<Asset>, IngestError> {
        Ok(self.ports.assets.list_assets(account, filter, page).await?)
    }

    /// Deletes the asset and everything derived from it, then purges its bytes.
    ///
    /// # Errors
    /// `IngestError::NotFound` when the asset does not exist or is another account's;
    /// `IngestError::Unavailable` when the repository does not answer (retryable), `Internal`
    /// otherwise. Bytes that cannot be purged now stay in the outbox and are not an error.
    pub async fn delete_asset(&self, account: &AccountId, id: &AssetId) -> Result<(), IngestError> {
        let at = self.ports.clock.now();
        let purge = self
            .ports
            .assets
            .delete_asset(account, id, at)
            .await?
            .ok_or(IngestError::NotFound)?;
        self.purge_after_writer(&purge).await;
        Ok(())
    }
}

impl Ingest {
    /// Checks a download link served by this service and returns the object's size.
    ///
    /// # Errors
    /// `InvalidSignature` when tampered or expired; `NotFound` when the bytes are gone.
    pub async fn open_download(
        &self,
        link: &crate::ports::SignedDownload,
    ) -> Result<u64, IngestError> {
        if !self.ports.links.verify(link, self.ports.clock.now()) {
            return Err(IngestError::InvalidSignature);
        }
        Ok(self.ports.blobs.object_size(&link.asset_id).await?)
    }

    /// Streams a byte range of an asset's object (after [`Ingest::open_download`]).
    ///
    /// # Errors
    /// `IngestError::NotFound` when the object is gone; `Unavailable` or `Internal` from blob
    /// storage.
    pub async fn read_object(
        &self,
        asset: &AssetId,
        range: std::ops::Range<u64>,
    ) -> Result<crate::ports::BlobStream, IngestError> {
        Ok(self.ports.blobs.read_range(asset, range).await?)
    }
}
