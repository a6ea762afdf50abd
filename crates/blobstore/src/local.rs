//! Local-disk storage: TUS part files staged under `uploads/`, finished objects under
//! `objects/`.
//!
//! Part files are our own code, because the sink must write at an offset and `fdatasync`
//! before it acknowledges. Finished objects are read through `object_store`'s
//! `LocalFileSystem`, the same interface an S3-like store would offer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore};
use tokio::task::spawn_blocking;

use roughy_app::ports::{
    AppendOutcome, AppendStop, BlobError, BlobReader, BlobStore, BlobStream, ByteStream, Cause,
    UploadSink,
};
use roughy_domain::{AssetId, MediaFormat, Staging, Upload, UploadId};

use std::sync::Arc;

use crate::part_writer::{
    BufferPool, PartFile, PartWriter, DIRECT_ALIGN, IDLE_WRITE_BUFFERS, WRITE_BUFFER_SIZE,
};

/// The size of the chunks [`BlobStore::read_range`] streams (64 KiB).
pub const READ_CHUNK_SIZE: usize = 64 * 1024;

const UPLOADS_DIR: &str = "uploads";
const OBJECTS_DIR: &str = "objects";

/// Blob storage on a local filesystem: a durable [`UploadSink`] and a [`BlobStore`].
///
/// Layout under the root: `uploads/<upload_id>.part` while an upload is staged,
/// `objects/<asset_id>` once complete (moved there by a rename, never copied). Several
/// processes may share the root, as long as one upload is written by one request at a time
/// (the upload lock's job).
#[derive(Debug)]
pub struct LocalBlobStore {
    root: PathBuf,
    uploads: PathBuf,
    objects_dir: PathBuf,
    objects: LocalFileSystem,
    /// The write buffers of appends, kept between them.
    buffers: Arc<BufferPool>,
    direct_io: bool,
}

impl LocalBlobStore {
    /// Opens the store at `root`, creating `root/uploads/` and `root/objects/` as needed.
    ///
    /// # Errors
    /// `BlobError::Internal` when the directories cannot be created or opened.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        let uploads = root.join(UPLOADS_DIR);
        let objects_dir = root.join(OBJECTS_DIR);
        for dir in [&uploads, &objects_dir] {
            fs::create_dir_all(dir).map_err(|e| io_failure("creating", dir, &e))?;
        }
        let objects = LocalFileSystem::new_with_prefix(&objects_dir)
            .map_err(|e| BlobError::Internal(e.to_string().into()))?;
        Ok(Self {
            root,
            uploads,
            objects_dir,
            objects,
            buffers: Arc::new(BufferPool::new(WRITE_BUFFER_SIZE, IDLE_WRITE_BUFFERS)),
            direct_io: true,
        })
    }

    /// Sets the size of the write buffers `append` uses (default [`WRITE_BUFFER_SIZE`]; at
    /// least 1). Each append holds at most [`WRITE_BUFFERS`](crate::WRITE_BUFFERS) of them;
    /// the store keeps [`IDLE_WRITE_BUFFERS`](crate::IDLE_WRITE_BUFFERS) idle ones for the
    /// next appends.
    #[must_use]
    pub fn with_write_buffer_size(mut self, bytes: usize) -> Self {
        self.buffers = Arc::new(BufferPool::new(bytes, IDLE_WRITE_BUFFERS));
        self
    }

    /// Whether `append` writes the aligned bulk of uploads with direct I/O (`O_DIRECT`, past
    /// the page cache) where the platform and filesystem allow it (default: yes). Without it,
    /// or where refused, every byte goes through the page cache; both are synced the same way.
    #[must_use]
    pub fn with_direct_io(mut self, direct_io: bool) -> Self {
        self.direct_io = direct_io;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn part_path(&self, id: &UploadId) -> PathBuf {
        self.uploads.join(format!("{id}.part"))
    }

    fn object_path(&self, asset: &AssetId) -> PathBuf {
        self.objects_dir.join(asset.as_str())
    }

    fn object_key(asset: &AssetId) -> ObjectPath {
        ObjectPath::from(asset.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Upload sink
// ---------------------------------------------------------------------------------------------

/// Why a part file could not be opened for an append.
#[derive(Debug)]
enum OpenFailure {
    /// The part file holds fewer bytes than the repository's offset: staged bytes were lost.
    Missing {
        staged: u64,
    },
    Io(io::Error),
}

/// Opens (at offset 0, creates) the part file and drops anything staged past `offset`. (The
/// writer writes at explicit offsets, so the file's position does not matter.)
fn open_part(path: &Path, uploads: &Path, offset: u64) -> Result<File, OpenFailure> {
    let file = if offset == 0 {
        match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(file) => {
                // The new name must survive a crash as surely as the bytes written into it.
                sync_dir(uploads).map_err(OpenFailure::Io)?;
                file
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(OpenFailure::Io)?,
            Err(e) => return Err(OpenFailure::Io(e)),
        }
    } else {
        match OpenOptions::new().write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(OpenFailure::Missing { staged: 0 })
            }
            Err(e) => return Err(OpenFailure::Io(e)),
        }
    };
    let staged = file.metadata().map_err(OpenFailure::Io)?.len();
    if staged < offset {
        // Extending would fill the gap with zeros and corrupt the object silently.
        return Err(OpenFailure::Missing { staged });
    }
    file.set_len(offset).map_err(OpenFailure::Io)?;
    Ok(file)
}

#[async_trait(?Send)]
impl UploadSink for LocalBlobStore {
    /// Streams the body into `uploads/<id>.part` at `offset` and `fdatasync`s once at the end.
    ///
    /// The part file is only touched once the body carries a byte, so an empty body changes
    /// nothing (not even a part file already moved into place by `complete`).
    /// A part file needs nothing prepared: it is created by the first byte.
    async fn begin(&self, _upload: &Upload, _format: MediaFormat) -> Result<Staging, BlobError> {
        Ok(Staging::default())
    }

    async fn append<'a>(&self, upload: &Upload, body: ByteStream<'a>) -> AppendOutcome {
        self.append_at(&upload.id, upload.offset, body, upload.remaining())
            .await
    }
}

impl LocalBlobStore {
    /// Streams `body` into `uploads/<id>.part` at `offset`, at most `limit` bytes (what
    /// [`UploadSink::append`] does with the upload's offset and remaining bytes).
    #[tracing::instrument(skip(self, body))]
    pub async fn append_at<'a>(
        &self,
        id: &UploadId,
        offset: u64,
        mut body: ByteStream<'a>,
        limit: u64,
    ) -> AppendOutcome {
        let mut writer: Option<PartWriter> = None;
        let mut received: u64 = 0;
        let mut stop = None;
        while let Some(item) = body.next().await {
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    stop = Some(AppendStop::Body(e));
                    break;
                }
            };
            let room = limit - received;
            let too_long = chunk.len() as u64 > room;
            // Only the bytes up to the limit are kept; `room` < chunk.len() fits a usize here.
            let keep = if too_long {
                chunk.slice(..usize::try_from(room).unwrap_or(0))
            } else {
                chunk
            };
            if !keep.is_empty() {
                if writer.is_none() {
                    writer = match self.open_writer(id, offset, limit).await {
                        Ok(writer) => Some(writer),
                        Err(outcome) => return outcome,
                    };
                }
                let kept = keep.len() as u64;
                if let Some(writer) = writer.as_mut() {
                    writer.push(keep).await;
                    if writer.failed() {
                        break;
                    }
                }
                received += kept;
            }
            if too_long {
                stop = Some(AppendStop::TooLong);
                break;
            }
        }
        // The connection's resources are not needed for the sync.
        drop(body);

        let Some(writer) = writer else {
            return AppendOutcome {
                offset,
                staging: Staging::default(),
                stop,
            };
        };
        let (durable, error) = writer.finish().await;
        let offset = offset + durable;
        if let Some(e) = error {
            tracing::error!(upload = %id, offset, error = %e, "writing the part file failed");
            stop = Some(AppendStop::Storage(write_failure(
                &e,
                format!("writing upload {id}: {e}"),
            )));
        }
        AppendOutcome {
            offset,
            staging: Staging::default(),
            stop,
        }
    }
}

impl LocalBlobStore {
    /// Opens the part file for an append. On failure, the outcome to report.
    async fn open_writer(
        &self,
        id: &UploadId,
        offset: u64,
        limit: u64,
    ) -> Result<PartWriter, AppendOutcome> {
        let path = self.part_path(id);
        let uploads = self.uploads.clone();
        let direct_io = self.direct_io;
        let opened = spawn_blocking(move || {
            open_part(&path, &uploads, offset).map(|file| PartFile::new(file, &path, direct_io))
        })
        .await;
        let failure = match opened {
            Ok(Ok(file)) => {
                // A body that fits the limit needs no bigger buffer than the limit (rounded up
                // to whole blocks, as direct I/O wants them).
                let full = self.buffers.size();
                let buffer = usize::try_from(limit)
                    .ok()
                    .and_then(|l| l.checked_next_multiple_of(DIRECT_ALIGN))
                    .map_or(full, |l| l.min(full));
                return Ok(PartWriter::new(
                    file,
                    offset,
                    Arc::clone(&self.buffers),
                    buffer,
                ));
            }
            Ok(Err(OpenFailure::Missing { staged })) => {
                tracing::error!(
                    upload = %id, offset, staged,
                    "the part file holds fewer bytes than the recorded offset"
                );
                return Err(AppendOutcome {
                    // The truth about what is stored, though less than the repository says.
                    offset: staged,
                    staging: Staging::default(),
                    stop: Some(AppendStop::Storage(BlobError::Internal(
                        format!("upload {id}: {staged} bytes staged, {offset} expected").into(),
                    ))),
                });
            }
            Ok(Err(OpenFailure::Io(e))) => write_failure(&e, format!("opening upload {id}: {e}")),
            Err(join) => {
                BlobError::Internal(format!("opening upload {id}: open task failed: {join}").into())
            }
        };
        tracing::error!(upload = %id, error = %failure, "opening the part file failed");
        Err(AppendOutcome {
            offset,
            staging: Staging::default(),
            stop: Some(AppendStop::Storage(failure)),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Finished objects
// ---------------------------------------------------------------------------------------------

impl LocalBlobStore {
    /// Syncs the part file, renames it to `objects/<asset>` and syncs both directories.
    /// Repeating it after success answers the object's size.
    ///
    /// # Errors
    /// `BlobError::NotFound` when neither the part file nor the object exists; an I/O failure
    /// as `InsufficientStorage` (a full disk) or `Internal`.
    #[tracing::instrument(skip(self))]
    pub async fn complete_at(&self, id: &UploadId, asset: &AssetId) -> Result<u64, BlobError> {
        let part = self.part_path(id);
        let object = self.object_path(asset);

        let uploads = self.uploads.clone();
        let objects = self.objects_dir.clone();
        blocking(move || {
            let file = match File::open(&part) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Completed before (the repository failed to record it): the object is
                    // in place already.
                    return match fs::metadata(&object) {
                        Ok(meta) => Ok(meta.len()),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BlobError::NotFound),
                        Err(e) => Err(io_failure("reading", &object, &e)),
                    };
                }
                Err(e) => return Err(io_failure("opening", &part, &e)),
            };
            // Bytes and size, not timestamps: the object needs nothing else to be durable.
            // (Every append already ended with fdatasync, so this is usually a no-op.)
            file.sync_data()
                .map_err(|e| io_failure("syncing", &part, &e))?;
            let size = file
                .metadata()
                .map_err(|e| io_failure("reading", &part, &e))?
                .len();
            drop(file);
            fs::rename(&part, &object).map_err(|e| io_failure("moving", &part, &e))?;
            // The rename is durable only once both directories are.
            sync_dir(&objects).map_err(|e| io_failure("syncing", &objects, &e))?;
            sync_dir(&uploads).map_err(|e| io_failure("syncing", &uploads, &e))?;
            Ok(size)
        })
        .await
    }

    /// Removes the part file; a missing one is fine.
    ///
    /// # Errors
    /// `BlobError::Internal` when the file exists and cannot be removed.
    #[tracing::instrument(skip(self))]
    pub async fn abort_at(&self, id: &UploadId) -> Result<(), BlobError> {
        let part = self.part_path(id);
        blocking(move || match fs::remove_file(&part) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_failure("removing", &part, &e)),
        })
        .await
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    /// Syncs the part file, renames it to `objects/<asset>` and syncs both directories.
    /// Repeating it after success answers the object's size.
    async fn complete_upload(&self, upload: &Upload) -> Result<u64, BlobError> {
        self.complete_at(&upload.id, &upload.asset_id).await
    }

    /// Removes the part file; a missing one is fine.
    #[tracing::instrument(skip(self, _staging))]
    async fn abort_upload(&self, id: &UploadId, _staging: &Staging) -> Result<(), BlobError> {
        self.abort_at(id).await
    }

    #[tracing::instrument(skip(self))]
    async fn object_size(&self, asset: &AssetId) -> Result<u64, BlobError> {
        let meta = self
            .objects
            .head(&Self::object_key(asset))
            .await
            .map_err(store_error)?;
        Ok(meta.size)
    }

    /// Streams `range` in [`READ_CHUNK_SIZE`] chunks. A range past the end is cut at the end;
    /// one starting at or past it is an error.
    #[tracing::instrument(skip(self))]
    async fn read_range(
        &self,
        asset: &AssetId,
        range: Range<u64>,
    ) -> Result<BlobStream, BlobError> {
        if range.start >= range.end {
            // object_store refuses empty ranges; answer one for an object that exists.
            self.object_size(asset).await?;
            return Ok(stream::empty().boxed());
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let got = self
            .objects
            .get_opts(&Self::object_key(asset), options)
            .await
            .map_err(store_error)?;
        Ok(match got.payload {
            GetResultPayload::File(file, _) => file_chunks(file, got.range),
            GetResultPayload::Stream(bytes) => bytes.map_err(store_error).boxed(),
        })
    }

    #[tracing::instrument(skip(self))]
    async fn open_reader(&self, asset: &AssetId) -> Result<Box<dyn BlobReader>, BlobError> {
        let path = self.object_path(asset);
        blocking(move || {
            let file = File::open(&path).map_err(|e| not_found_or(&e, "opening", &path))?;
            Ok(Box::new(file) as Box<dyn BlobReader>)
        })
        .await
    }

    /// Downloads take their `Content-Type` from the signed link's format, not from the file:
    /// nothing to rewrite, only check the object is there.
    async fn retype(&self, asset: &AssetId, _format: MediaFormat) -> Result<(), BlobError> {
        self.object_size(asset).await.map(drop)
    }

    #[tracing::instrument(skip(self))]
    async fn delete_object(&self, asset: &AssetId) -> Result<(), BlobError> {
        match self.objects.delete(&Self::object_key(asset)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Writes and removes a probe file under `uploads/`, and checks `objects/` is there.
    #[tracing::instrument(skip(self))]
    async fn check(&self) -> Result<(), BlobError> {
        let probe = self
            .uploads
            .join(format!(".check-{}", hex::encode(rand::random::<[u8; 8]>())));
        let objects = self.objects_dir.clone();
        blocking(move || {
            fs::write(&probe, b"ok").map_err(|e| io_failure("writing", &probe, &e))?;
            fs::remove_file(&probe).map_err(|e| io_failure("removing", &probe, &e))?;
            match fs::metadata(&objects) {
                Ok(meta) if meta.is_dir() => Ok(()),
                Ok(_) => Err(BlobError::Internal(
                    format!("{} is not a directory", objects.display()).into(),
                )),
                Err(e) => Err(io_failure("reading", &objects, &e)),
            }
        })
        .await
    }
}

/// Reads `range` of `file` in [`READ_CHUNK_SIZE`] chunks on the blocking pool.
fn file_chunks(file: File, range: Range<u64>) -> BlobStream {
    struct Cursor {
        file: File,
        pos: u64,
        end: u64,
        positioned: bool,
    }
    let cursor = Cursor {
        file,
        pos: range.start,
        end: range.end,
        positioned: false,
    };
    stream::try_unfold(cursor, |mut cursor| async move {
        if cursor.pos >= cursor.end {
            return Ok(None);
        }
        // At most READ_CHUNK_SIZE, so it fits a usize.
        let want = usize::try_from((cursor.end - cursor.pos).min(READ_CHUNK_SIZE as u64))
            .unwrap_or(READ_CHUNK_SIZE);
        let (cursor, chunk) = blocking(move || {
            if !cursor.positioned {
                cursor
                    .file
                    .seek(SeekFrom::Start(cursor.pos))
                    .map_err(|e| BlobError::Internal(format!("seeking an object: {e}").into()))?;
                cursor.positioned = true;
            }
            let mut chunk = vec![0; want];
            cursor.file.read_exact(&mut chunk).map_err(|e| {
                // A short read means the object shrank under us (deleted and replaced).
                BlobError::Internal(format!("reading an object: {e}").into())
            })?;
            Ok((cursor, chunk))
        })
        .await?;
        let mut cursor = cursor;
        cursor.pos += want as u64;
        Ok(Some((Bytes::from(chunk), cursor)))
    })
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs blocking file work off the async workers.
async fn blocking<T, F>(work: F) -> Result<T, BlobError>
where
    F: FnOnce() -> Result<T, BlobError> + Send + 'static,
    T: Send + 'static,
{
    spawn_blocking(work)
        .await
        .map_err(|e| BlobError::Internal(format!("blocking task failed: {e}").into()))?
}

/// `fsync`s a directory, making the names created or removed in it durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened for syncing here; the platform keeps names durable itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// A failed write: `InsufficientStorage` when the disk (or the quota) is full, so the client
/// hears 507 and resumes once space is back; `Internal` otherwise.
fn write_failure(e: &io::Error, message: String) -> BlobError {
    /// `ENOSPC` and `EDQUOT` on Linux, for errors that reach us without their kind.
    const NO_SPACE: [i32; 2] = [28, 122];
    let full = matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || e
        .raw_os_error()
        .is_some_and(|code| NO_SPACE.contains(&code));
    if full {
        BlobError::InsufficientStorage(message.into())
    } else {
        BlobError::Internal(message.into())
    }
}

fn io_failure(doing: &str, path: &Path, e: &io::Error) -> BlobError {
    BlobError::Internal(format!("{doing} {}: {e}", path.display()).into())
}

fn not_found_or(e: &io::Error, doing: &str, path: &Path) -> BlobError {
    if e.kind() == io::ErrorKind::NotFound {
        BlobError::NotFound
    } else {
        io_failure(doing, path, e)
    }
}

fn store_error(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        other => BlobError::Internal(Cause::with_source("the local object store failed", other)),
    }
}

#[cfg(test)]
mod tests;
