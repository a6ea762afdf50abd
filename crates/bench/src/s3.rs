//! The S3 rows: the service with its blobs in a local S3 server (s3s-fs, started by
//! `scripts/s3s-fs run`), beside that server's own limit for the same client: the same
//! `object_store` S3 client uploading the same bytes in the same parts, as many in flight,
//! straight to it.
//!
//! The S3 server is found through the variables `scripts/s3s-fs run` exports
//! (`ROUGHY_TEST_S3_*`); a bucket is a directory under its root.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use tokio::task::JoinHandle;

use crate::wav::Wav;

/// The variable whose presence turns the S3 rows on by default.
pub const ENDPOINT_VAR: &str = "ROUGHY_TEST_S3_ENDPOINT";

/// The bucket the benchmark creates (a directory under the server's root).
pub const BUCKET: &str = "roughy-bench";

/// The service's key prefix in [`BUCKET`] (`ROUGHY_STORAGE_URL=s3://roughy-bench/media`).
pub const PREFIX: &str = "media";

/// The service's part size and parts in flight: its embedded defaults, which the direct
/// limit uses too.
pub const PART_SIZE: usize = roughy_blobstore::DEFAULT_PART_SIZE;
/// See [`PART_SIZE`].
pub const PARTS_IN_FLIGHT: usize = roughy_blobstore::DEFAULT_PARTS_IN_FLIGHT;

/// Where the local S3 server is and how to sign for it.
#[derive(Clone, Debug)]
pub struct S3Env {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The server's root directory: a bucket is a directory in it.
    pub root: PathBuf,
    access_key: String,
    secret_key: String,
    region: String,
}

impl S3Env {
    /// Whether this process was started with an S3 server's variables.
    pub fn present() -> bool {
        std::env::var_os(ENDPOINT_VAR).is_some()
    }

    /// From the variables `scripts/s3s-fs run` exports.
    ///
    /// # Errors
    /// When one is missing or empty: S3 rows were asked for without an S3 server.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From `lookup` (the environment, or a test's map).
    ///
    /// # Errors
    /// When a variable is missing or empty.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |name: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .with_context(|| {
                    format!(
                        "the S3 rows need {name} (and the other ROUGHY_TEST_S3_* variables): run \
                         under `scripts/s3s-fs run -- …` as `make bench` does, or leave out \
                         --s3 / `--only s3`"
                    )
                })
        };
        Ok(Self {
            endpoint: var(ENDPOINT_VAR)?,
            root: PathBuf::from(var("ROUGHY_TEST_S3_ROOT")?),
            access_key: var("ROUGHY_TEST_S3_ACCESS_KEY")?,
            secret_key: var("ROUGHY_TEST_S3_SECRET_KEY")?,
            region: lookup("ROUGHY_TEST_S3_REGION")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "us-east-1".to_owned()),
        })
    }

    /// Creates [`BUCKET`] (a directory under the root) unless it exists.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn create_bucket(&self) -> anyhow::Result<()> {
        let dir = self.root.join(BUCKET);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the bucket {}", dir.display()))
    }

    /// Where the server keeps the service's finished objects (`<asset id>` files).
    pub fn objects_dir(&self) -> PathBuf {
        self.root.join(BUCKET).join(PREFIX).join("objects")
    }

    /// The variables that put the service's blobs in [`BUCKET`] under [`PREFIX`] (part size
    /// and parts in flight stay at their defaults).
    pub fn service_env(&self) -> Vec<(String, String)> {
        [
            ("ROUGHY_STORAGE_URL", format!("s3://{BUCKET}/{PREFIX}")),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The `object_store` S3 client of [`BUCKET`], configured as the service configures its
    /// own (path-style requests, plain HTTP allowed, default client options).
    ///
    /// # Errors
    /// When the client cannot be built.
    pub fn store(&self) -> anyhow::Result<Arc<AmazonS3>> {
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region(&self.region)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .with_bucket_name(BUCKET)
            .build()
            .context("building the S3 client")?;
        Ok(Arc::new(store))
    }
}

/// One direct multipart upload.
#[derive(Clone, Copy, Debug)]
pub struct DirectUpload {
    /// From creating the multipart upload to the last part's answer: what a PATCH's time
    /// covers (the service completes the multipart upload later, while processing).
    pub parts: Duration,
    /// `complete_multipart`, after that.
    pub complete: Duration,
}

/// Uploads `wav` to `key` as a multipart upload of `part_size` parts, at most `in_flight` of
/// them at once (the service's pattern: a part is sent as soon as it is whole, and the oldest
/// is waited for once `in_flight` are uploading), completes it, checks the object's size and
/// deletes it. Parts are zero-copy lists of the content's chunks.
///
/// # Errors
/// When a request fails or the object has the wrong size.
pub async fn put_parts_directly(
    store: &Arc<AmazonS3>,
    key: &str,
    wav: &Wav,
    part_size: usize,
    in_flight: usize,
) -> anyhow::Result<DirectUpload> {
    let path = Path::from(key);
    let started = Instant::now();
    let upload = store
        .create_multipart(&path)
        .await
        .context("create_multipart")?;
    let mut uploading: VecDeque<JoinHandle<object_store::Result<PartId>>> = VecDeque::new();
    let mut parts = Vec::new();
    let mut offset = 0;
    let mut index = 0;
    while offset < wav.size() {
        let end = (offset + part_size as u64).min(wav.size());
        let payload: PutPayload = wav.chunks(offset..end).collect();
        let (store, path, upload) = (Arc::clone(store), path.clone(), upload.clone());
        uploading.push_back(tokio::spawn(async move {
            store.put_part(&path, &upload, index, payload).await
        }));
        index += 1;
        offset = end;
        if uploading.len() >= in_flight {
            parts.push(settle(&mut uploading).await?);
        }
    }
    while !uploading.is_empty() {
        parts.push(settle(&mut uploading).await?);
    }
    let parts_took = started.elapsed();
    let completing = Instant::now();
    store
        .complete_multipart(&path, &upload, parts)
        .await
        .context("complete_multipart")?;
    let complete = completing.elapsed();
    let meta = store
        .head(&path)
        .await
        .context("HEAD of the direct upload")?;
    ensure!(
        meta.size == wav.size(),
        "the direct upload stored {} bytes, {} sent",
        meta.size,
        wav.size()
    );
    store
        .delete(&path)
        .await
        .context("deleting the direct upload")?;
    Ok(DirectUpload {
        parts: parts_took,
        complete,
    })
}

/// Waits for the oldest part.
async fn settle(
    uploading: &mut VecDeque<JoinHandle<object_store::Result<PartId>>>,
) -> anyhow::Result<PartId> {
    let handle = uploading.pop_front().context("no part is uploading")?;
    handle
        .await
        .context("a part upload task failed")?
        .context("put_part")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_rows_without_a_server_fail_loudly() {
        let err = S3Env::from_lookup(|_| None).expect_err("no S3 server");
        assert!(format!("{err:#}").contains("ROUGHY_TEST_S3_ENDPOINT"));
        let env = S3Env::from_lookup(|name| Some(format!("v-{name}"))).expect("all set");
        assert_eq!(
            env.objects_dir(),
            PathBuf::from("v-ROUGHY_TEST_S3_ROOT/roughy-bench/media/objects")
        );
    }
}
