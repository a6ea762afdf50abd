//! Blob storage adapter of Roughy ingest.
//!
//! - [`LocalBlobStore`]: the durable [`UploadSink`](roughy_app::ports::UploadSink) and the
//!   [`BlobStore`](roughy_app::ports::BlobStore) on a local filesystem. Upload bytes are
//!   staged in part files, written through a bounded double buffer (with `O_DIRECT` where
//!   available, past the page cache) and `fdatasync`ed before they are acknowledged; a finished
//!   upload is renamed into place (zero copy).
//! - [`HmacDownloadLinks`]: the [`DownloadLinks`](roughy_app::ports::DownloadLinks) signed
//!   with HMAC-SHA256, plus [`generate_key`] and [`load_or_create_key`] for its key.
//!
//! Write boundary: none. An append makes durable and acknowledges every byte it received, so
//! after a dropped connection the stored offset is exactly what arrived before the drop.

mod links;
mod local;
mod object;
mod part_writer;

pub use links::{generate_key, load_or_create_key, HmacDownloadLinks, SigningKeyError, KEY_LEN};
pub use local::{LocalBlobStore, READ_CHUNK_SIZE};
pub use object::{
    option_variables, ObjectBackend, ObjectBlobStore, ObjectStoreConfigError, ObjectStoreSettings,
    PresignedLinks, DEFAULT_PARTS_IN_FLIGHT, DEFAULT_PART_SIZE, MAX_PARTS, MIN_PART_SIZE,
    READ_BLOCK,
};
pub use part_writer::{DIRECT_ALIGN, IDLE_WRITE_BUFFERS, WRITE_BUFFERS, WRITE_BUFFER_SIZE};
