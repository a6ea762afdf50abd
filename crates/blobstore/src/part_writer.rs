//! The part-file writer behind [`LocalBlobStore::append`](crate::LocalBlobStore).
//!
//! Network reads and disk writes overlap: incoming bytes are copied into one buffer while the
//! previous, full buffer is written by a blocking task. Memory therefore stays at
//! [`WRITE_BUFFERS`] × the buffer size per append, whatever the size of the body's chunks, and
//! the async workers never block on the disk. The file is `fdatasync`ed once, at the end.

use std::fs::File;
use std::io::{self, Write};

use tokio::task::{spawn_blocking, JoinHandle};

/// The default size of one write buffer (2 MiB): large enough that a gigabyte upload costs a
/// few hundred writes, small enough that many concurrent uploads stay cheap.
pub const WRITE_BUFFER_SIZE: usize = 2 * 1024 * 1024;

/// How many write buffers one append holds at most: the one being filled from the network and
/// the one being written to disk.
pub const WRITE_BUFFERS: usize = 2;

/// What a blocking write hands back: the file, the (now reusable) buffer, and the result.
type WriteDone = (File, Vec<u8>, io::Result<()>);

/// A write handed to the blocking pool.
#[derive(Debug)]
struct InFlight {
    task: JoinHandle<WriteDone>,
    /// Bytes being written.
    len: usize,
    /// The buffer's allocation, counted against the memory bound.
    capacity: usize,
}

/// Streams bytes into an open part file, sequentially from its current position.
#[derive(Debug)]
pub(crate) struct PartWriter {
    /// The file, while no write is in flight (it travels with the write). `None` also when a
    /// write task died with it.
    file: Option<File>,
    in_flight: Option<InFlight>,
    /// The buffer being filled.
    fill: Vec<u8>,
    /// The buffer a finished write handed back, reused for the next fill.
    spare: Option<Vec<u8>>,
    buffer_size: usize,
    /// Bytes written (not yet synced) by finished writes.
    written: u64,
    /// The first failure; nothing is written after it.
    error: Option<io::Error>,
}

impl PartWriter {
    /// A writer over `file`, positioned where the bytes go, with buffers of `buffer_size`
    /// bytes (at least 1).
    pub(crate) fn new(file: File, buffer_size: usize) -> Self {
        let buffer_size = buffer_size.max(1);
        Self {
            file: Some(file),
            in_flight: None,
            fill: Vec::with_capacity(buffer_size),
            spare: None,
            buffer_size,
            written: 0,
            error: None,
        }
    }

    /// Whether a write failed (further bytes are dropped; stop reading the body).
    pub(crate) fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The buffer memory this writer holds right now (filled, spare and in flight).
    pub(crate) fn held_bytes(&self) -> usize {
        self.fill.capacity()
            + self.spare.as_ref().map_or(0, Vec::capacity)
            + self.in_flight.as_ref().map_or(0, |w| w.capacity)
    }

    /// The most buffer memory a writer ever holds.
    pub(crate) fn max_held_bytes(&self) -> usize {
        WRITE_BUFFERS * self.buffer_size
    }

    /// Queues `data`, handing every full buffer to the disk. Waits only when the previous
    /// write is still running, which is the back-pressure on the network.
    pub(crate) async fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.error.is_none() {
            let room = self.buffer_size - self.fill.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.fill.extend_from_slice(now);
            data = rest;
            if self.fill.len() == self.buffer_size {
                self.submit().await;
            }
        }
        debug_assert!(self.held_bytes() <= self.max_held_bytes());
    }

    /// Writes what is buffered, then `fdatasync`s once. Returns how many bytes are durable
    /// (all pushed bytes, or those before a failure) and the failure, if any.
    pub(crate) async fn finish(mut self) -> (u64, Option<io::Error>) {
        self.submit().await;
        self.settle().await;
        let Some(file) = self.file.take() else {
            // The file went down with a write task: nothing can be synced.
            return (0, self.error);
        };
        match spawn_blocking(move || file.sync_data()).await {
            Ok(Ok(())) => (self.written, self.error),
            // Not synced: none of the new bytes may be counted.
            Ok(Err(e)) => (0, Some(self.error.unwrap_or(e))),
            Err(join) => (
                0,
                Some(
                    self.error
                        .unwrap_or_else(|| io::Error::other(format!("sync task failed: {join}"))),
                ),
            ),
        }
    }

    /// Hands the fill buffer to a blocking write, after the previous write finished.
    async fn submit(&mut self) {
        if self.fill.is_empty() {
            return;
        }
        self.settle().await;
        if self.error.is_some() {
            return;
        }
        let Some(mut file) = self.file.take() else {
            return;
        };
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(self.buffer_size));
        let data = std::mem::replace(&mut self.fill, next);
        let (len, capacity) = (data.len(), data.capacity());
        let task = spawn_blocking(move || {
            let result = file.write_all(&data);
            (file, data, result)
        });
        self.in_flight = Some(InFlight {
            task,
            len,
            capacity,
        });
    }

    /// Waits for the write in flight, if any, and takes back its file and buffer.
    async fn settle(&mut self) {
        let Some(in_flight) = self.in_flight.take() else {
            return;
        };
        match in_flight.task.await {
            Ok((file, mut buffer, result)) => {
                self.file = Some(file);
                match result {
                    Ok(()) => self.written += in_flight.len as u64,
                    // A failed write_all may have written part of the buffer: none of it
                    // counts, and the next append truncates it away.
                    Err(e) => self.fail(e),
                }
                buffer.clear();
                self.spare = Some(buffer);
            }
            Err(join) => self.fail(io::Error::other(format!("write task failed: {join}"))),
        }
    }

    fn fail(&mut self, error: io::Error) {
        if self.error.is_none() {
            self.error = Some(error);
        }
        // Whatever is buffered will never be written: give the memory back now.
        self.fill = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Deterministic bytes, so misplaced or repeated bytes show up.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(31))
            .collect()
    }

    #[tokio::test]
    async fn holds_at_most_two_buffers_whatever_the_chunk_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        let file = File::create(&path).unwrap();
        let buffer = 4096;
        let mut writer = PartWriter::new(file, buffer);
        assert_eq!(writer.max_held_bytes(), WRITE_BUFFERS * buffer);

        let sizes = [
            1,
            4095,
            4096,
            4097,
            10_000,
            1,
            65_536,
            3 * 4096 + 5,
            1_000_000,
            7,
        ];
        let mut expected = Vec::new();
        for (i, size) in sizes.into_iter().enumerate() {
            let chunk = pattern(size, i as u8);
            writer.push(&chunk).await;
            expected.extend_from_slice(&chunk);
            assert!(
                writer.held_bytes() <= writer.max_held_bytes(),
                "held {} bytes after a {size}-byte chunk",
                writer.held_bytes()
            );
        }
        let (durable, error) = writer.finish().await;
        assert!(error.is_none());
        assert_eq!(durable, expected.len() as u64);

        let mut stored = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut stored).unwrap();
        assert_eq!(stored, expected);
    }

    #[tokio::test]
    async fn the_default_bound_is_a_few_mebibytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("part")).unwrap();
        let mut writer = PartWriter::new(file, WRITE_BUFFER_SIZE);
        // 64 MiB in 64 KiB chunks, the shape of a large PATCH.
        let chunk = pattern(64 * 1024, 3);
        for _ in 0..1024 {
            writer.push(&chunk).await;
            assert!(writer.held_bytes() <= writer.max_held_bytes());
        }
        assert!(writer.max_held_bytes() <= 8 * 1024 * 1024);
        let (durable, error) = writer.finish().await;
        assert!(error.is_none());
        assert_eq!(durable, 64 * 1024 * 1024);
    }

    #[tokio::test]
    async fn a_failed_write_counts_nothing_of_its_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        File::create(&path).unwrap();
        // A read-only handle: every write fails.
        let file = File::open(&path).unwrap();
        let mut writer = PartWriter::new(file, 8);
        writer.push(&[1; 20]).await;
        writer.push(&[2; 20]).await;
        assert!(writer.failed());
        assert!(writer.held_bytes() <= writer.max_held_bytes());
        let (durable, error) = writer.finish().await;
        assert_eq!(durable, 0);
        assert!(error.is_some());
    }
}
