//! The stored object as a symphonia [`MediaSource`].

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::{Arc, OnceLock};

use roughy_app::ports::BlobReader;
use symphonia::core::io::MediaSource;

/// Reads until `buf` is full or the reader ends; returns how many bytes were read.
pub(crate) fn read_up_to<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The first I/O error the underlying reader reported, shared with the prober so it can tell a
/// storage failure (worth retrying) from a format error (final).
pub(crate) type IoFailure = Arc<OnceLock<String>>;

/// A [`BlobReader`] that symphonia can read and seek; it remembers the reader's first error.
pub(crate) struct BlobSource {
    inner: Box<dyn BlobReader>,
    len: Option<u64>,
    failure: IoFailure,
}

impl BlobSource {
    /// Wraps `inner`; errors it reports are recorded in `failure`.
    pub(crate) fn new(inner: Box<dyn BlobReader>, failure: IoFailure) -> Self {
        let len = inner.byte_len();
        Self {
            inner,
            len,
            failure,
        }
    }

    /// Records `err` (the first one wins) and passes it on.
    fn note(&self, err: io::Error) -> io::Error {
        // Reading past the end is how demuxers find the end of a file, and a seek to a negative
        // offset comes from a bad offset in the file: neither is a storage failure.
        let format_caused = matches!(
            err.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::Interrupted | io::ErrorKind::InvalidInput
        );
        if !format_caused {
            let _ = self.failure.set(err.to_string());
        }
        err
    }
}

impl Read for BlobSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| self.note(e))
    }
}

impl Seek for BlobSource {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let at = self.inner.seek(pos).map_err(|e| self.note(e))?;
        // A demuxer following an offset past the end (an index of a cut file) learns here
        // that the data is missing; reading there would only find nothing, and symphonia's
        // Matroska reader panics on that instead of failing.
        match self.len {
            Some(len) if at > len => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("offset {at} is past the end of the file ({len} bytes)"),
            )),
            _ => Ok(at),
        }
    }
}

impl MediaSource for BlobSource {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        self.len
    }
}
