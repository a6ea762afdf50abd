//! Object storage (S3 and friends through `object_store`): uploads staged as multipart
//! uploads, finished objects read with ranged GETs, downloads by presigned URL.
//!
//! How an upload is staged (as tusd's S3 store does):
//! - The multipart upload is created when the first chunk was identified
//!   ([`UploadSink::begin`]), by a client whose default `Content-Type` is the format's, so the
//!   object carries it and a presigned GET serves it.
//! - A PATCH streams into fixed-size parts ([`ObjectStoreSettings::part_size`]), at most
//!   [`ObjectStoreSettings::parts_in_flight`] of them uploading at once: memory per PATCH is
//!   bounded by part size × (parts in flight + 1), whatever the chunk size.
//! - Bytes past the last whole part when the body ends (or drops) are stored durably as a small
//!   object `staging/<upload>/tail-<offset>` before the PATCH answers, and prepended to the next
//!   PATCH. The tail's key names the offset it ends at, so a tail written by a PATCH whose commit
//!   failed never overwrites the one the recorded offset needs.
//! - The part ETags live in the upload's [`Staging`], which the repository writes with the
//!   offset in one statement: the database's offset and the parts it counts never disagree,
//!   any process can continue the upload, and nothing has to be listed from storage (which
//!   `object_store` cannot do for parts).
//! - The last PATCH uploads the rest as the final part; the processing job completes the
//!   multipart upload ([`BlobStore::complete_upload`]), repeatably.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, AttributeValue, Attributes, ClientConfigKey, GetOptions, GetRange, ObjectStore,
    PutMultipartOptions, PutPayload, WriteMultipart,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use roughy_app::ports::{
    AppendOutcome, AppendStop, BlobError, BlobReader, BlobStore, BlobStream, ByteStream, Cause,
    DownloadLinks, SignedDownload, UploadSink,
};
use roughy_domain::{AssetId, MediaFormat, Staging, Upload, UploadId};

/// The default part size: 8 MiB, so 6,400 parts cover a 50 GiB upload (S3 allows 10,000).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// The smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The most parts of one upload S3 accepts.
pub const MAX_PARTS: u64 = 10_000;
/// Parts of one PATCH uploading at once by default.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 2;
/// The size of the ranged reads a probe makes (1 MiB).
pub const READ_BLOCK: usize = 1024 * 1024;

/// How to reach the bucket and how to stage uploads in it.
#[derive(Clone, Debug)]
pub struct ObjectStoreSettings {
    /// `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`.
    pub url: String,
    /// Configuration pairs in the environment's spelling (`AWS_ENDPOINT`, `AWS_REGION`, …),
    /// applied over what the process environment says.
    pub options: Vec<(String, String)>,
    /// Bytes per multipart part (≥ [`MIN_PART_SIZE`]).
    pub part_size: usize,
    /// Parts of one PATCH uploading at once (≥ 1).
    pub parts_in_flight: usize,
}

/// What [`ObjectBlobStore`] needs of a store: objects, multipart uploads and presigning.
pub trait ObjectBackend: ObjectStore + MultipartStore + Signer {}
impl<T: ObjectStore + MultipartStore + Signer> ObjectBackend for T {}

/// The variables each scheme's builder reads (besides the process environment).
pub fn option_variables(url: &str) -> &'static [&'static str] {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("s3" | "s3a") => &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT",
            "AWS_ENDPOINT_URL",
            "AWS_ALLOW_HTTP",
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ],
        Some("gs") => &[
            "GOOGLE_SERVICE_ACCOUNT",
            "GOOGLE_SERVICE_ACCOUNT_PATH",
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ],
        Some("az" | "azure" | "abfs" | "abfss") => &[
            "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_SAS_KEY",
            "AZURE_STORAGE_CLIENT_ID",
            "AZURE_STORAGE_CLIENT_SECRET",
            "AZURE_STORAGE_TENANT_ID",
            "AZURE_STORAGE_USE_EMULATOR",
            "AZURE_ALLOW_HTTP",
        ],
        _ => &[],
    }
}

/// A configuration the settings cannot be built from; names what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ObjectStoreConfigError {
    /// The variable at fault.
    pub variable: String,
    /// What is wrong.
    pub reason: String,
}

fn config_error(variable: &str, reason: impl ToString) -> ObjectStoreConfigError {
    ObjectStoreConfigError {
        variable: variable.to_owned(),
        reason: reason.to_string(),
    }
}

/// Splits `scheme://bucket/prefix` into the URL of the bucket and the prefix.
fn split_url(url: &str) -> Result<(String, String, Path), ObjectStoreConfigError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| config_error("ROUGHY_STORAGE_URL", "expected scheme://bucket/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(config_error(
            "ROUGHY_STORAGE_URL",
            "the bucket name is missing",
        ));
    }
    let prefix = Path::parse(prefix.trim_matches('/'))
        .map_err(|e| config_error("ROUGHY_STORAGE_URL", format!("bad prefix: {e}")))?;
    Ok((scheme.to_owned(), format!("{scheme}://{bucket}"), prefix))
}

/// One client per purpose: reads and parts, and a creating client per `Content-Type`.
type Backends = (
    Arc<dyn ObjectBackend>,
    HashMap<MediaFormat, Arc<dyn ObjectBackend>>,
);

/// The store and a creating client per format's `Content-Type`, from one builder type: each
/// builder reads the environment, then `options` (parsed as its own configuration keys).
macro_rules! backends {
    ($builder:ty, $key:ty, $url:expr, $options:expr) => {{
        let mut builder = <$builder>::from_env().with_url($url);
        for (k, v) in $options {
            let key: $key = k
                .to_ascii_lowercase()
                .parse()
                .map_err(|e| config_error(k, e))?;
            builder = builder.with_config(key, v);
        }
        let build = |b: $builder| -> Result<Arc<dyn ObjectBackend>, ObjectStoreConfigError> {
            Ok(Arc::new(
                b.build()
                    .map_err(|e| config_error("ROUGHY_STORAGE_URL", e))?,
            ))
        };
        let main = build(builder.clone())?;
        let mut creators = HashMap::new();
        for format in MediaFormat::all() {
            let typed = builder.clone().with_config(
                <$key>::Client(ClientConfigKey::DefaultContentType),
                format.content_type(),
            );
            creators.insert(format, build(typed)?);
        }
        Ok((main, creators))
    }};
}

/// Builds the store and its creating clients for `url` from `options`.
fn build_backends(
    scheme: &str,
    bucket_url: &str,
    options: &[(String, String)],
) -> Result<Backends, ObjectStoreConfigError> {
    let lookup = |name: &str| {
        options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.trim().is_empty())
    };
    match scheme {
        "s3" | "s3a" => {
            let has_keys = lookup("AWS_ACCESS_KEY_ID").is_some();
            let has_secret = lookup("AWS_SECRET_ACCESS_KEY").is_some();
            let role = [
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            ]
            .iter()
            .any(|v| lookup(v).is_some());
            match (has_keys, has_secret) {
                (true, false) => return Err(config_error("AWS_SECRET_ACCESS_KEY", "is required with AWS_ACCESS_KEY_ID")),
                (false, true) => return Err(config_error("AWS_ACCESS_KEY_ID", "is required with AWS_SECRET_ACCESS_KEY")),
                (false, false) if !role => {
                    return Err(config_error(
                        "AWS_ACCESS_KEY_ID",
                        "ROUGHY_STORAGE_URL is s3://…: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_WEB_IDENTITY_TOKEN_FILE / AWS_CONTAINER_CREDENTIALS_* for role credentials)",
                    ))
                }
                _ => {}
            }
            backends!(AmazonS3Builder, AmazonS3ConfigKey, bucket_url, options)
        }
        "gs" => {
            backends!(
                GoogleCloudStorageBuilder,
                GoogleConfigKey,
                bucket_url,
                options
            )
        }
        "az" | "azure" | "abfs" | "abfss" => {
            backends!(MicrosoftAzureBuilder, AzureConfigKey, bucket_url, options)
        }
        other => Err(config_error(
            "ROUGHY_STORAGE_URL",
            format!("unsupported scheme {other}:// (file://, s3://, gs:// or az://)"),
        )),
    }
}

/// The staging state of an upload in object storage, as the repository stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct MultipartState {
    /// The object's key (the multipart upload's).
    key: String,
    /// The multipart upload's id.
    upload: String,
    /// The part size this upload was begun with (every part but the last has it).
    part_size: u64,
    /// The ETag of each whole part, in order (part number = index + 1).
    parts: Vec<String>,
}

impl MultipartState {
    fn parse(staging: &Staging) -> Result<Self, BlobError> {
        serde_json::from_str(staging.as_str())
            .map_err(|e| BlobError::Internal(format!("unreadable staging state: {e}").into()))
    }

    fn staging(&self) -> Staging {
        // Serialising a struct of strings and numbers cannot fail.
        Staging::new(serde_json::to_string(self).unwrap_or_default())
    }
}

/// Blob storage in an object store: a durable [`UploadSink`], a [`BlobStore`] and presigned
/// [`DownloadLinks`].
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectBackend>,
    creators: HashMap<MediaFormat, Arc<dyn ObjectBackend>>,
    prefix: Path,
    part_size: usize,
    parts_in_flight: usize,
    url: String,
}

impl std::fmt::Debug for ObjectBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBlobStore")
            .field("url", &self.url)
            .field("part_size", &self.part_size)
            .field("parts_in_flight", &self.parts_in_flight)
            .finish_non_exhaustive()
    }
}

impl ObjectBlobStore {
    /// Builds the store from `settings` (no request is made: `/readyz` tells whether the
    /// bucket answers).
    ///
    /// # Errors
    /// A bad URL, option, part size or missing credentials, naming the variable.
    pub fn new(settings: &ObjectStoreSettings) -> Result<Self, ObjectStoreConfigError> {
        let (scheme, bucket_url, prefix) = split_url(&settings.url)?;
        if settings.part_size < MIN_PART_SIZE {
            return Err(config_error(
                "ROUGHY_STORAGE_PART_SIZE",
                format!("must be at least {MIN_PART_SIZE} bytes (5 MiB)"),
            ));
        }
        let max = roughy_domain::SizeBytes::MAX;
        if (settings.part_size as u64).saturating_mul(MAX_PARTS) < max {
            return Err(config_error(
                "ROUGHY_STORAGE_PART_SIZE",
                format!("{MAX_PARTS} parts of it must cover {max} bytes"),
            ));
        }
        if settings.parts_in_flight == 0 {
            return Err(config_error(
                "ROUGHY_STORAGE_PARTS_IN_FLIGHT",
                "must be at least 1",
            ));
        }
        let (store, creators) = build_backends(&scheme, &bucket_url, &settings.options)?;
        Ok(Self {
            store,
            creators,
            prefix,
            part_size: settings.part_size,
            parts_in_flight: settings.parts_in_flight,
            url: settings.url.clone(),
        })
    }

    fn object_path(&self, asset: &AssetId) -> Path {
        self.prefix.child("objects").child(asset.as_str())
    }

    fn staging_dir(&self, id: &UploadId) -> Path {
        self.prefix.child("staging").child(id.as_str())
    }

    fn tail_path(&self, id: &UploadId, end: u64) -> Path {
        self.staging_dir(id).child(format!("tail-{end:020}"))
    }

    /// Deletes staged tails that end before `offset`: the recorded offset is past them, so
    /// nothing will read them again. (Tails past it, of a PATCH whose commit failed, are left
    /// to completion or abort: one of them may be being written right now.)
    fn sweep_tails(&self, id: &UploadId, offset: u64) {
        let store = self.store.clone();
        let dir = self.staging_dir(id);
        let keep_from = format!("tail-{offset:020}");
        tokio::spawn(async move {
            let listed: Vec<_> = match store.list(Some(&dir)).try_collect().await {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::debug!(error = %e, "listing staged tails failed; left for later");
                    return;
                }
            };
            for meta in listed {
                let stale = meta
                    .location
                    .filename()
                    .is_some_and(|name| name.starts_with("tail-") && name < keep_from.as_str());
                if stale {
                    if let Err(e) = store.delete(&meta.location).await {
                        tracing::debug!(error = %e, "deleting a stale tail failed; left for later");
                    }
                }
            }
        });
    }

    /// Deletes everything under the upload's staging prefix.
    async fn delete_staged(&self, id: &UploadId) -> Result<(), BlobError> {
        let listed: Vec<_> = self
            .store
            .list(Some(&self.staging_dir(id)))
            .try_collect()
            .await
            .map_err(store_error)?;
        for meta in listed {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        Ok(())
    }

    fn upload_part(
        &self,
        path: &Path,
        upload: &str,
        index: usize,
        data: Bytes,
    ) -> JoinHandle<object_store::Result<PartId>> {
        let store = self.store.clone();
        let path = path.clone();
        let upload = upload.to_owned();
        tokio::spawn(async move {
            store
                .put_part(&path, &upload, index, PutPayload::from(data))
                .await
        })
    }
}

/// Why an append stopped storing, while its parts finish.
enum Halt {
    Body(AppendStop),
    Storage(BlobError),
}

#[async_trait(?Send)]
impl UploadSink for ObjectBlobStore {
    /// Creates the multipart upload with the format's `Content-Type`.
    #[tracing::instrument(skip_all, fields(upload = %upload.id))]
    async fn begin(&self, upload: &Upload, format: MediaFormat) -> Result<Staging, BlobError> {
        let creator = self.creators.get(&format).unwrap_or(&self.store);
        let path = self.object_path(&upload.asset_id);
        let id = creator.create_multipart(&path).await.map_err(store_error)?;
        Ok(MultipartState {
            key: path.to_string(),
            upload: id,
            part_size: self.part_size as u64,
            parts: Vec::new(),
        }
        .staging())
    }

    #[tracing::instrument(skip_all, fields(upload = %upload.id, offset = upload.offset))]
    async fn append<'a>(&self, upload: &Upload, mut body: ByteStream<'a>) -> AppendOutcome {
        let failed = |e: BlobError| AppendOutcome {
            offset: upload.offset,
            staging: upload.staging.clone(),
            stop: Some(AppendStop::Storage(e)),
        };
        let mut state = match MultipartState::parse(&upload.staging) {
            Ok(state) => state,
            Err(e) => return failed(e),
        };
        let part_size = state.part_size.max(1);
        let offset = upload.offset;
        let end = upload.length.get();
        let limit = upload.remaining();
        if state.parts.len() as u64 != offset / part_size {
            return failed(BlobError::Internal(
                format!(
                    "staging holds {} parts for offset {offset}",
                    state.parts.len()
                )
                .into(),
            ));
        }
        let path = self.object_path(&upload.asset_id);
        // Bytes of the current (unfinished) part: the stored tail, then the body.
        let part_len = usize::try_from(part_size).unwrap_or(self.part_size);
        let mut part = BytesMut::new();
        let tail_len = offset % part_size;
        if tail_len > 0 {
            match self.store.get(&self.tail_path(&upload.id, offset)).await {
                Ok(got) => match got.bytes().await {
                    Ok(tail) if tail.len() as u64 == tail_len => part.extend_from_slice(&tail),
                    Ok(tail) => {
                        return failed(BlobError::Internal(
                            format!(
                                "the staged tail holds {} bytes, {tail_len} expected",
                                tail.len()
                            )
                            .into(),
                        ))
                    }
                    Err(e) => return failed(store_error(e)),
                },
                Err(e) => return failed(store_error(e)),
            }
            self.sweep_tails(&upload.id, offset);
        }

        // Whole parts uploading, oldest first, with the index they were given.
        let mut in_flight: std::collections::VecDeque<JoinHandle<object_store::Result<PartId>>> =
            std::collections::VecDeque::new();
        let mut received: u64 = 0;
        let mut halt: Option<Halt> = None;
        let mut acked_parts = state.parts.len();
        // Waits for the oldest part; records it. False once a part failed.
        macro_rules! settle_oldest {
            () => {
                match in_flight.pop_front() {
                    Some(handle) => match handle.await {
                        Ok(Ok(part_id)) => {
                            state.parts.push(part_id.content_id);
                            true
                        }
                        Ok(Err(e)) => {
                            halt.get_or_insert(Halt::Storage(store_error(e)));
                            false
                        }
                        Err(e) => {
                            halt.get_or_insert(Halt::Storage(BlobError::Internal(
                                format!("part upload task failed: {e}").into(),
                            )));
                            false
                        }
                    },
                    None => true,
                }
            };
        }
        while halt.is_none() {
            let Some(item) = body.next().await else { break };
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    halt = Some(Halt::Body(AppendStop::Body(e)));
                    break;
                }
            };
            let room = limit - received;
            let too_long = chunk.len() as u64 > room;
            let keep = if too_long {
                chunk.slice(..usize::try_from(room).unwrap_or(0))
            } else {
                chunk
            };
            received += keep.len() as u64;
            let mut rest = keep;
            while !rest.is_empty() {
                let take = (part_len - part.len()).min(rest.len());
                part.extend_from_slice(&rest.split_to(take));
                if part.len() == part_len {
                    let data = std::mem::replace(&mut part, BytesMut::new()).freeze();
                    let index = acked_parts;
                    acked_parts += 1;
                    in_flight.push_back(self.upload_part(&path, &state.upload, index, data));
                    if in_flight.len() >= self.parts_in_flight && !settle_oldest!() {
                        break;
                    }
                }
            }
            if too_long {
                halt.get_or_insert(Halt::Body(AppendStop::TooLong));
                break;
            }
        }
        drop(body);
        while !in_flight.is_empty() {
            if !settle_oldest!() {
                // Parts after a failed one do not count (they are overwritten by the resend).
                for handle in in_flight.drain(..) {
                    handle.abort();
                }
            }
        }
        let whole = state.parts.len() as u64 * part_size;
        // With no new whole part, the recorded offset and its tail still stand.
        let mut offset_now = whole.max(offset);
        let storage_failed = matches!(halt, Some(Halt::Storage(_)));
        if matches!(halt, Some(Halt::Body(AppendStop::TooLong))) {
            // Nothing of a refused chunk counts: report where the upload was.
            return AppendOutcome {
                offset,
                staging: upload.staging.clone(),
                stop: Some(AppendStop::TooLong),
            };
        }
        if !storage_failed && !part.is_empty() {
            let pending = whole + part.len() as u64;
            let data = part.freeze();
            if pending == end {
                // The final part may be any size.
                match self
                    .upload_part(&path, &state.upload, state.parts.len(), data)
                    .await
                {
                    Ok(Ok(part_id)) => {
                        state.parts.push(part_id.content_id);
                        offset_now = end;
                    }
                    Ok(Err(e)) => halt = Some(Halt::Storage(store_error(e))),
                    Err(e) => halt = Some(Halt::Storage(BlobError::Internal(e.to_string().into()))),
                }
            } else {
                let tail = self.tail_path(&upload.id, pending);
                match self.store.put(&tail, PutPayload::from(data)).await {
                    Ok(_) => offset_now = pending,
                    Err(e) => halt = Some(Halt::Storage(store_error(e))),
                }
            }
        } else if !storage_failed && whole == end {
            offset_now = end;
        }
        let stop = match halt {
            Some(Halt::Body(stop)) => Some(stop),
            Some(Halt::Storage(e)) => {
                tracing::error!(upload = %upload.id, offset = offset_now, error = %e, "staging upload bytes failed");
                Some(AppendStop::Storage(e))
            }
            None => None,
        };
        AppendOutcome {
            offset: offset_now,
            staging: state.staging(),
            stop,
        }
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    /// Completes the multipart upload from the recorded parts (unless the object exists
    /// already), then deletes the staged tails.
    #[tracing::instrument(skip_all, fields(upload = %upload.id, asset = %upload.asset_id))]
    async fn complete_upload(&self, upload: &Upload) -> Result<u64, BlobError> {
        let path = self.object_path(&upload.asset_id);
        if let Ok(meta) = self.store.head(&path).await {
            return Ok(meta.size);
        }
        let state = MultipartState::parse(&upload.staging)?;
        let parts = state
            .parts
            .iter()
            .map(|etag| PartId {
                content_id: etag.clone(),
            })
            .collect();
        let completed = self
            .store
            .complete_multipart(&path, &state.upload, parts)
            .await;
        if let Err(e) = completed {
            // Another worker may have completed it meanwhile.
            return match self.store.head(&path).await {
                Ok(meta) => Ok(meta.size),
                Err(object_store::Error::NotFound { .. }) => match e {
                    // The multipart upload is gone (completed, then the object deleted; or
                    // aborted) — S3 answers 404 NoSuchUpload, some stores 403 — and there is
                    // no object: nothing can be completed, ever.
                    object_store::Error::NotFound { .. }
                    | object_store::Error::PermissionDenied { .. } => Err(BlobError::NotFound),
                    e => {
                        tracing::warn!(error = %e, "completing the multipart upload failed");
                        Err(store_error(e))
                    }
                },
                Err(head) => Err(store_error(head)),
            };
        }
        if let Err(e) = self.delete_staged(&upload.id).await {
            tracing::warn!(error = %e, "staged tails left behind after completion");
        }
        Ok(self.store.head(&path).await.map_err(store_error)?.size)
    }

    /// Aborts the multipart upload (a gone one is fine) and deletes the staged tails.
    #[tracing::instrument(skip(self, staging))]
    async fn abort_upload(&self, id: &UploadId, staging: &Staging) -> Result<(), BlobError> {
        if !staging.is_empty() {
            let state = MultipartState::parse(staging)?;
            let key = Path::parse(&state.key)
                .map_err(|e| BlobError::Internal(format!("bad staged key: {e}").into()))?;
            match self.store.abort_multipart(&key, &state.upload).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                // Some stores answer 403 rather than 404 for an upload already gone (completed
                // or aborted); a real failure leaves parts that the bucket's lifecycle rule for
                // incomplete multipart uploads removes.
                Err(e) => {
                    tracing::warn!(error = %e, "aborting the multipart upload failed; treated as gone")
                }
            }
        }
        self.delete_staged(id).await
    }

    async fn object_size(&self, asset: &AssetId) -> Result<u64, BlobError> {
        Ok(self
            .store
            .head(&self.object_path(asset))
            .await
            .map_err(store_error)?
            .size)
    }

    async fn read_range(
        &self,
        asset: &AssetId,
        range: Range<u64>,
    ) -> Result<BlobStream, BlobError> {
        let path = self.object_path(asset);
        if range.start >= range.end {
            self.store.head(&path).await.map_err(store_error)?;
            return Ok(futures::stream::empty().boxed());
        }
        let got = self
            .store
            .get_opts(
                &path,
                GetOptions {
                    range: Some(GetRange::Bounded(range)),
                    ..GetOptions::default()
                },
            )
            .await
            .map_err(store_error)?;
        Ok(got.into_stream().map_err(store_error).boxed())
    }

    async fn open_reader(&self, asset: &AssetId) -> Result<Box<dyn BlobReader>, BlobError> {
        let path = self.object_path(asset);
        let len = self.store.head(&path).await.map_err(store_error)?.size;
        Ok(Box::new(RangedReader {
            store: self.store.clone(),
            path,
            len,
            pos: 0,
            block: Bytes::new(),
            block_start: 0,
            runtime: Handle::current(),
        }))
    }

    /// Rewrites the object under its own key with the new `Content-Type` (object stores keep
    /// an object's metadata for its life, and a copy keeps it too): the object's GET streamed
    /// into a multipart upload, at most part size × parts in flight in memory. Only MKV
    /// refined to MKA needs it. A copy that fails midway is aborted; the object stays as it was.
    #[tracing::instrument(skip(self))]
    async fn retype(&self, asset: &AssetId, format: MediaFormat) -> Result<(), BlobError> {
        let path = self.object_path(asset);
        let got = self.store.get(&path).await.map_err(store_error)?;
        let current = got.attributes.get(&Attribute::ContentType);
        if current.is_some_and(|v| v.as_ref() == format.content_type()) {
            return Ok(());
        }
        let opts = PutMultipartOptions {
            attributes: Attributes::from_iter([(
                Attribute::ContentType,
                AttributeValue::from(format.content_type()),
            )]),
            ..PutMultipartOptions::default()
        };
        let upload = self
            .store
            .put_multipart_opts(&path, opts)
            .await
            .map_err(store_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut bytes = got.into_stream();
        let copied: object_store::Result<()> = async {
            while let Some(chunk) = bytes.next().await {
                let chunk = chunk?;
                writer.wait_for_capacity(self.parts_in_flight).await?;
                writer.write(&chunk);
            }
            Ok(())
        }
        .await;
        if let Err(e) = copied {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, "aborting a retype copy failed");
            }
            return Err(store_error(e));
        }
        writer.finish().await.map_err(store_error)?;
        Ok(())
    }

    async fn delete_object(&self, asset: &AssetId) -> Result<(), BlobError> {
        match self.store.delete(&self.object_path(asset)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Lists the prefix: a bucket that does not answer (or does not exist) fails.
    async fn check(&self) -> Result<(), BlobError> {
        self.store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map(drop)
            .map_err(|e| BlobError::Unavailable(e.to_string().into()))
    }
}

/// A blocking reader over an object, by ranged GETs of [`READ_BLOCK`] bytes (for probing on
/// the blocking pool; never more than one block in memory).
struct RangedReader {
    store: Arc<dyn ObjectBackend>,
    path: Path,
    len: u64,
    pos: u64,
    block: Bytes,
    block_start: u64,
    runtime: Handle,
}

impl Read for RangedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let block_end = self.block_start + self.block.len() as u64;
        if self.pos < self.block_start || self.pos >= block_end {
            let end = (self.pos + READ_BLOCK as u64).min(self.len);
            let range = self.pos..end;
            let store = self.store.clone();
            let path = self.path.clone();
            self.block = self
                .runtime
                .block_on(async move { store.get_range(&path, range).await })
                .map_err(io::Error::other)?;
            self.block_start = self.pos;
            if self.block.is_empty() {
                return Ok(0);
            }
        }
        let from = usize::try_from(self.pos - self.block_start).unwrap_or(0);
        let n = (self.block.len() - from).min(buf.len());
        buf[..n].copy_from_slice(&self.block[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangedReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

impl BlobReader for RangedReader {
    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

/// Download links presigned by the object store: the bucket serves them (with `Range`), so
/// the service's `/v1/downloads` route refuses every link of this kind.
#[derive(Clone)]
pub struct PresignedLinks {
    store: Arc<dyn ObjectBackend>,
    prefix: Path,
}

impl std::fmt::Debug for PresignedLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresignedLinks").finish_non_exhaustive()
    }
}

impl ObjectBlobStore {
    /// The presigned download links of this store's objects.
    pub fn links(&self) -> PresignedLinks {
        PresignedLinks {
            store: self.store.clone(),
            prefix: self.prefix.clone(),
        }
    }
}

#[async_trait]
impl DownloadLinks for PresignedLinks {
    async fn link(
        &self,
        _base: &str,
        asset: &AssetId,
        _format: MediaFormat,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<String, BlobError> {
        let ttl = StdDuration::try_from(expires_at - now).unwrap_or(StdDuration::from_secs(1));
        let path = self.prefix.child("objects").child(asset.as_str());
        self.store
            .signed_url(http::Method::GET, &path, ttl.max(StdDuration::from_secs(1)))
            .await
            .map(|url| url.to_string())
            .map_err(store_error)
    }

    fn verify(&self, _link: &SignedDownload, _now: OffsetDateTime) -> bool {
        false
    }
}

fn store_error(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        other => {
            BlobError::Unavailable(Cause::with_source("the object store request failed", other))
        }
    }
}
