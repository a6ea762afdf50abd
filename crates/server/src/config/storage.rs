//! The storage section: where blobs live, and the key download links are signed with.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use roughy_blobstore::ObjectStoreSettings;

use super::env::Env;
use super::ConfigError;

/// `ROUGHY_SIGNING_KEY`: at least this many bytes once trimmed (the HMAC-SHA256 output size).
pub const MIN_SIGNING_KEY_LEN: usize = 32;
/// `ROUGHY_STORAGE_PART_SIZE`: at most 5 GiB, S3's largest part (each PATCH buffers parts).
const MAX_PART_SIZE: u64 = 5 << 30;

/// Where blobs live.
#[derive(Debug, Clone)]
pub enum BlobLocation {
    /// A local directory (`file://…`).
    Local(PathBuf),
    /// An object store (`s3://`, `gs://`, `az://`), with its options and staging sizes.
    Object(ObjectStoreSettings),
}

/// Blob storage, handed whole to the wiring that opens it.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// `ROUGHY_STORAGE_URL` (file://<data dir>/blobs); for an object store also
    /// `ROUGHY_STORAGE_PART_SIZE` (8 MiB, at most 5 GiB), `ROUGHY_STORAGE_PARTS_IN_FLIGHT`
    /// (2, 1 to 64) and the store's own variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub blobs: BlobLocation,
    /// `ROUGHY_SIGNING_KEY` (generated and kept in the data dir): the key of the links this
    /// service signs itself (local storage); trimmed, at least 32 bytes.
    pub signing_key: Option<SecretString>,
}

impl StorageConfig {
    /// Reads and checks the section; local storage defaults to `<data_dir>/blobs`.
    ///
    /// # Errors
    /// A `ConfigError` naming the first bad variable.
    pub fn from_env(env: &Env<'_>, data_dir: &Path) -> Result<Self, ConfigError> {
        let blobs = match env.var("ROUGHY_STORAGE_URL") {
            None => BlobLocation::Local(data_dir.join("blobs")),
            Some(url) => parse_storage_url(&url, env)?,
        };
        Ok(Self {
            blobs,
            signing_key: env.secret("ROUGHY_SIGNING_KEY", MIN_SIGNING_KEY_LEN, false)?,
        })
    }
}

fn parse_storage_url(url: &str, env: &Env<'_>) -> Result<BlobLocation, ConfigError> {
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(ConfigError::new(
                "ROUGHY_STORAGE_URL",
                "file:// needs a path",
            ));
        }
        return Ok(BlobLocation::Local(PathBuf::from(path)));
    }
    // The lower bounds (S3's 5 MiB and 10,000 parts per upload) are checked by the store.
    let settings = ObjectStoreSettings {
        url: url.to_owned(),
        options: roughy_blobstore::option_variables(url)
            .iter()
            .filter_map(|name| env.var(name).map(|v| ((*name).to_owned(), v)))
            .collect(),
        part_size: env.usize(
            "ROUGHY_STORAGE_PART_SIZE",
            roughy_blobstore::DEFAULT_PART_SIZE as u64,
            1,
            MAX_PART_SIZE,
        )?,
        parts_in_flight: env.usize(
            "ROUGHY_STORAGE_PARTS_IN_FLIGHT",
            roughy_blobstore::DEFAULT_PARTS_IN_FLIGHT as u64,
            1,
            64,
        )?,
    };
    // Building makes no request: it checks the URL, the options and the credentials.
    roughy_blobstore::ObjectBlobStore::new(&settings)
        .map_err(|e| ConfigError::new(e.variable, e.reason))?;
    Ok(BlobLocation::Object(settings))
}
