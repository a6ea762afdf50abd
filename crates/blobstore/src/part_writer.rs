//! The part-file writer behind [`LocalBlobStore::append`](crate::LocalBlobStore).
//!
//! Network reads and disk writes overlap: incoming bytes are gathered into one buffer while up
//! to [`WRITE_BUFFERS`]` - 1` full buffers are written by blocking tasks, each at its own offset
//! (positional writes), so the disk always has the next write queued. Memory therefore stays
//! at [`WRITE_BUFFERS`] buffers per append (and the body's chunks they wait for), whatever the
//! size of the body's chunks, and the async workers never block on the disk. The file is
//! `fdatasync`ed once, at the end.
//!
//! Copies off the receiving task: a chunk of [`DEFERRED_COPY_MIN`] bytes or more is not copied
//! into the buffer when it arrives; its place in the buffer is reserved and the chunk itself
//! (a reference-counted [`Bytes`]) goes with the buffer to the blocking task, which copies it
//! there just before the write. One PATCH is received by one task on one thread, and with the
//! copy on it that thread spent a third of a gigabyte PATCH copying; now the copies run on the
//! blocking threads, beside the receiving. Smaller chunks are copied at once: they are cheap to
//! copy, and a buffer then never waits on more than `size / DEFERRED_COPY_MIN` chunks.
//!
//! Direct I/O: where the platform and the filesystem allow it (Linux, `O_DIRECT`), the
//! 4 KiB-aligned bulk of every buffer goes straight to the disk, past the page cache; only an
//! unaligned head (the first buffer of an append that starts mid-block) and tail (the last
//! buffer) go through the page cache. Upload bytes are written once and read back once, later,
//! by processing: caching gigabytes of them only evicts hotter data, and on a virtual machine
//! every fresh page-cache page also costs a fault in the host. With `O_DIRECT` a gigabyte
//! upload costs no page-cache copy, and the final `fdatasync` has nothing left to write back
//! (it still commits the file's size and flushes the disk's cache). A filesystem that refuses
//! `O_DIRECT` (at open or at the first write) gets the same bytes through the page cache.
//!
//! To make the aligned part of a buffer an aligned memory range too, a buffer maps a window
//! of the file: byte `i` of the window goes to file offset `start + i`, where `start` and the
//! window's address are both multiples of [`DIRECT_ALIGN`].
//!
//! Buffers outlive the append: a [`BufferPool`] keeps a few between PATCHes. A fresh buffer
//! costs a page fault and a zeroed page per 4 KiB on first touch (or a `memset`, when the
//! allocator reuses memory); at 5 MiB PATCHes that was most of the server's CPU per PATCH.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::task::{spawn_blocking, JoinHandle};

/// The default size of one write buffer (1 MiB): large enough that a gigabyte upload costs a
/// thousand writes (and direct writes of this size run at the disk's full speed), small enough
/// that the last write of a PATCH, which starts only when its last byte arrived, is short.
/// Against four 2 MiB buffers, with the deferred copies (3 rounds each): one 1 GiB PATCH 1152
/// → 1396 MB/s, 16 MiB PATCHes 823 → 906, 5 MiB PATCHes 528 → 607.
pub const WRITE_BUFFER_SIZE: usize = 1024 * 1024;

/// How many write buffers one append holds at most: the one being filled from the network and
/// up to three being written (4 MiB per upload in all at the default size). One write at a
/// time leaves the disk idle between writes; more than three queued measured slower on this
/// virtual disk, not faster: 1 MiB buffers, eight against four, six paired rounds each of
/// `roughy-bench --only one,chunked`: one 1 GiB PATCH 1290 → 1397 MB/s (medians), 16 MiB
/// PATCHes 975 → 1028, 5 MiB PATCHes 661 → 666.
pub const WRITE_BUFFERS: usize = 4;

/// The smallest chunk whose copy into a write buffer is left to the blocking task that writes
/// the buffer (see the module documentation).
pub const DEFERRED_COPY_MIN: usize = 16 * 1024;

/// How many idle write buffers a store keeps for its next appends (see [`BufferPool`]): those
/// of two appends, 8 MiB at the default size.
pub const IDLE_WRITE_BUFFERS: usize = 2 * WRITE_BUFFERS;

/// The alignment `O_DIRECT` needs of file offsets, lengths and memory: 4 KiB covers disks
/// with 512-byte and with 4 KiB sectors.
pub const DIRECT_ALIGN: usize = 4096;

/// An open part file: a buffered handle (unaligned heads and tails, the sync) and, when direct
/// I/O is available, an `O_DIRECT` handle on the same file for the aligned bulk. Writes are
/// positional, so several may run at once.
#[derive(Debug)]
pub(crate) struct PartFile {
    buffered: File,
    direct: Option<File>,
    /// Cleared when the filesystem refuses a direct write: the page cache from then on.
    direct_ok: AtomicBool,
}

impl PartFile {
    /// `buffered`, plus an `O_DIRECT` handle on `path` when `direct_io` is asked for and the
    /// platform and filesystem allow it.
    pub(crate) fn new(buffered: File, path: &Path, direct_io: bool) -> Self {
        let direct = if direct_io { open_direct(path) } else { None };
        Self {
            direct_ok: AtomicBool::new(direct.is_some()),
            buffered,
            direct,
        }
    }

    /// Whether the aligned bulk goes past the page cache.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    fn direct(&self) -> Option<&File> {
        self.direct
            .as_ref()
            .filter(|_| self.direct_ok.load(Ordering::Relaxed))
    }

    /// Writes the filled part of `buffer` at its place in the file.
    fn write(&self, buffer: &Buffer) -> io::Result<()> {
        let window = buffer.window();
        let (from, to) = (buffer.from, buffer.len);
        let at = |i: usize| buffer.start + i as u64;
        let mut done = from;
        if let Some(direct) = self.direct() {
            let aligned_from = from.next_multiple_of(DIRECT_ALIGN).min(to);
            let aligned_to = to - to % DIRECT_ALIGN;
            if aligned_to > aligned_from {
                self.buffered
                    .write_all_at(&window[from..aligned_from], at(from))?;
                done = aligned_from;
                match direct.write_all_at(&window[aligned_from..aligned_to], at(aligned_from)) {
                    Ok(()) => done = aligned_to,
                    // The filesystem takes O_DIRECT opens but not these writes: rewrite the
                    // range through the page cache, and keep to it.
                    Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                        tracing::warn!(error = %e, "direct I/O refused; writing through the page cache");
                        self.direct_ok.store(false, Ordering::Relaxed);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.buffered.write_all_at(&window[done..to], at(done))
    }

    /// `fdatasync`: the bytes written, the file's size, and the disk's cache.
    fn sync_data(&self) -> io::Result<()> {
        self.buffered.sync_data()
    }
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

/// A write buffer mapped onto a window of the file (see the module documentation).
#[derive(Debug)]
struct Buffer {
    /// The allocation: the window plus room to align it.
    storage: Vec<u8>,
    /// Where the window begins in `storage`.
    base: usize,
    /// The window's length.
    size: usize,
    /// The file offset of the window's first byte.
    start: u64,
    /// The first byte of the window that belongs to this buffer's write.
    from: usize,
    /// The end of the filled bytes.
    len: usize,
}

impl Buffer {
    /// A buffer whose window holds `size` bytes.
    fn new(size: usize) -> Self {
        // Zeroed memory comes from the allocator as fresh pages, at no cost until touched.
        let storage = vec![0_u8; size + DIRECT_ALIGN];
        let misalignment = storage.as_ptr().addr() % DIRECT_ALIGN;
        let base = (DIRECT_ALIGN - misalignment) % DIRECT_ALIGN;
        Self {
            storage,
            base,
            size,
            start: 0,
            from: 0,
            len: 0,
        }
    }

    /// Maps the window onto the file so that its next byte goes to `position`: `start` is
    /// `position` rounded down to `align`.
    fn place(&mut self, position: u64, align: usize) {
        let lead = position % align as u64;
        self.start = position - lead;
        // Less than `align`, which is at most the window's size.
        self.from = lead as usize;
        self.len = self.from;
    }

    fn window(&self) -> &[u8] {
        &self.storage[self.base..self.base + self.size]
    }

    fn filled(&self) -> usize {
        self.len - self.from
    }

    fn room(&self) -> usize {
        self.size - self.len
    }

    fn extend(&mut self, data: &[u8]) {
        let at = self.claim(data.len());
        self.put(at, data);
    }

    /// Counts the next `len` bytes as filled without writing them (the caller [`put`]s them
    /// before the buffer is written); returns where they start in the window.
    ///
    /// [`put`]: Buffer::put
    fn claim(&mut self, len: usize) -> usize {
        let at = self.len;
        self.len += len;
        at
    }

    /// Writes `data` at `at` in the window, inside the filled bytes.
    fn put(&mut self, at: usize, data: &[u8]) {
        let at = self.base + at;
        self.storage[at..at + data.len()].copy_from_slice(data);
    }

    fn capacity(&self) -> usize {
        self.storage.capacity()
    }

    /// No allocation: what a writer holds once its buffers went back.
    fn empty() -> Self {
        Self {
            storage: Vec::new(),
            base: 0,
            size: 0,
            start: 0,
            from: 0,
            len: 0,
        }
    }

    /// The largest window this allocation can map.
    fn max_window(&self) -> usize {
        self.storage.len() - self.base
    }

    /// The same allocation with a window of `size` bytes (at most [`Buffer::max_window`]).
    fn resized(mut self, size: usize) -> Self {
        self.size = size.min(self.max_window());
        self.start = 0;
        self.from = 0;
        self.len = 0;
        self
    }
}

/// Write buffers kept between appends (see the module documentation): at most `keep` idle
/// buffers of `size` bytes, shared by every append of a store.
#[derive(Debug)]
pub(crate) struct BufferPool {
    idle: Mutex<Vec<Buffer>>,
    size: usize,
    keep: usize,
}

impl BufferPool {
    /// A pool of buffers of `size` bytes (at least 1) that keeps up to `keep` idle ones.
    pub(crate) fn new(size: usize, keep: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::with_capacity(keep)),
            size: size.max(1),
            keep,
        }
    }

    /// The size of a full buffer.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// A buffer with a window of `window` bytes (at most the pool's size): an idle one if
    /// there is one, else a new allocation of the full size, whose pages cost nothing until a
    /// write touches them.
    fn take(&self, window: usize) -> Buffer {
        let window = window.clamp(1, self.size);
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        idle.unwrap_or_else(|| Buffer::new(self.size))
            .resized(window)
    }

    /// Takes buffers back, keeping at most `keep` (the rest are freed).
    fn give(&self, buffers: impl IntoIterator<Item = Buffer>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        for buffer in buffers {
            if idle.len() < self.keep && buffer.max_window() >= self.size {
                idle.push(buffer);
            }
        }
    }

    /// How many idle buffers the pool holds.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// What a blocking write hands back: the (now reusable) buffer, and the result.
type WriteDone = (Buffer, io::Result<()>);

/// A chunk whose copy into a buffer is left to the blocking write (see the module
/// documentation): it goes to the window at `at`.
#[derive(Debug)]
struct Deferred {
    at: usize,
    bytes: Bytes,
}

/// The bytes of chunks waiting to be copied in (at most `size / DEFERRED_COPY_MIN` of them).
fn deferred_bytes(deferred: &[Deferred]) -> usize {
    deferred.iter().map(|chunk| chunk.bytes.len()).sum()
}

/// A buffer on its way to the disk: the chunks it still has to take in, then the write.
fn write_out(file: &PartFile, mut buffer: Buffer, deferred: Vec<Deferred>) -> WriteDone {
    for chunk in deferred {
        buffer.put(chunk.at, &chunk.bytes);
    }
    let result = file.write(&buffer);
    (buffer, result)
}

/// A write handed to the blocking pool.
#[derive(Debug)]
struct InFlight {
    task: JoinHandle<WriteDone>,
    /// Bytes being written.
    len: usize,
    /// The buffer's allocation and the chunks it waits for, counted against the memory bound.
    capacity: usize,
}

/// Streams bytes into an open part file, sequentially from a given offset.
#[derive(Debug)]
pub(crate) struct PartWriter {
    file: Arc<PartFile>,
    /// Where buffers come from and go back to.
    pool: Arc<BufferPool>,
    /// Writes running, oldest first.
    in_flight: VecDeque<InFlight>,
    /// The buffer being filled.
    fill: Buffer,
    /// The chunks whose place in `fill` is reserved, to be copied by its write.
    deferred: Vec<Deferred>,
    /// Buffers finished writes handed back, reused for the next fills.
    spare: Vec<Buffer>,
    buffer_size: usize,
    /// What window starts are aligned to: [`DIRECT_ALIGN`] for direct I/O, else 1.
    align: usize,
    /// The file offset the next pushed byte goes to.
    position: u64,
    /// Bytes written (not yet synced) by finished writes, up to the first failure.
    written: u64,
    /// The first failure; nothing is written after it, nor counted.
    error: Option<io::Error>,
}

impl PartWriter {
    /// A writer of `file` from `offset` on, with buffers from `pool` whose windows hold
    /// `buffer_size` bytes (at least 1, at most the pool's size). Direct I/O needs the size to
    /// be a multiple of [`DIRECT_ALIGN`]; other sizes write through the page cache.
    pub(crate) fn new(
        file: PartFile,
        offset: u64,
        pool: Arc<BufferPool>,
        buffer_size: usize,
    ) -> Self {
        let buffer_size = buffer_size.clamp(1, pool.size());
        let align = if file.is_direct() && buffer_size % DIRECT_ALIGN == 0 {
            DIRECT_ALIGN
        } else {
            1
        };
        let mut fill = pool.take(buffer_size);
        fill.place(offset, align);
        Self {
            file: Arc::new(file),
            pool,
            in_flight: VecDeque::with_capacity(WRITE_BUFFERS),
            fill,
            deferred: Vec::new(),
            spare: Vec::with_capacity(WRITE_BUFFERS),
            buffer_size,
            align,
            position: offset,
            written: 0,
            error: None,
        }
    }

    /// Whether a write failed (further bytes are dropped; stop reading the body).
    pub(crate) fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The buffer memory this writer holds right now (filled, spare and in flight, with the
    /// chunks they wait for).
    pub(crate) fn held_bytes(&self) -> usize {
        self.fill.capacity()
            + deferred_bytes(&self.deferred)
            + self.spare.iter().map(Buffer::capacity).sum::<usize>()
            + self.in_flight.iter().map(|w| w.capacity).sum::<usize>()
    }

    /// The most buffer memory a writer ever holds: its buffers, each with a buffer's worth of
    /// chunks waiting to be copied in.
    pub(crate) fn max_held_bytes(&self) -> usize {
        WRITE_BUFFERS * (2 * self.pool.size() + DIRECT_ALIGN)
    }

    /// Queues `data`, handing every full buffer to the disk. Waits only when every other
    /// buffer is being written, which is the back-pressure on the network.
    pub(crate) async fn push(&mut self, mut data: Bytes) {
        while !data.is_empty() && self.error.is_none() {
            let now = data.split_to(self.fill.room().min(data.len()));
            self.position += now.len() as u64;
            if now.len() >= DEFERRED_COPY_MIN {
                let at = self.fill.claim(now.len());
                self.deferred.push(Deferred { at, bytes: now });
            } else {
                self.fill.extend(&now);
            }
            if self.fill.room() == 0 {
                self.submit().await;
            }
        }
        debug_assert!(self.held_bytes() <= self.max_held_bytes());
    }

    /// Writes what is buffered, waits for every write, then `fdatasync`s once. Returns how many
    /// bytes are durable (all pushed bytes, or those before the first failure) and the
    /// failure, if any.
    pub(crate) async fn finish(mut self) -> (u64, Option<io::Error>) {
        self.submit().await;
        while !self.in_flight.is_empty() {
            self.settle_oldest().await;
        }
        let file = Arc::clone(&self.file);
        match spawn_blocking(move || file.sync_data()).await {
            Ok(Ok(())) => (self.written, self.error.take()),
            // Not synced: none of the new bytes may be counted.
            Ok(Err(e)) => (0, Some(self.error.take().unwrap_or(e))),
            Err(join) => (
                0,
                Some(
                    self.error
                        .take()
                        .unwrap_or_else(|| io::Error::other(format!("sync task failed: {join}"))),
                ),
            ),
        }
    }

    /// Hands the fill buffer to a blocking write, once fewer than `WRITE_BUFFERS - 1` writes
    /// are running.
    async fn submit(&mut self) {
        if self.fill.filled() == 0 {
            return;
        }
        while self.in_flight.len() >= WRITE_BUFFERS - 1 {
            self.settle_oldest().await;
        }
        if self.error.is_some() {
            return;
        }
        let mut next = self
            .spare
            .pop()
            .unwrap_or_else(|| self.pool.take(self.buffer_size));
        next.place(self.position, self.align);
        let buffer = std::mem::replace(&mut self.fill, next);
        let deferred = std::mem::take(&mut self.deferred);
        let (len, capacity) = (
            buffer.filled(),
            buffer.capacity() + deferred_bytes(&deferred),
        );
        let file = Arc::clone(&self.file);
        let task = spawn_blocking(move || write_out(&file, buffer, deferred));
        self.in_flight.push_back(InFlight {
            task,
            len,
            capacity,
        });
    }

    /// Waits for the oldest write and takes back its buffer. Bytes count only while every
    /// earlier write succeeded: the durable offset never skips a gap.
    async fn settle_oldest(&mut self) {
        let Some(in_flight) = self.in_flight.pop_front() else {
            return;
        };
        match in_flight.task.await {
            Ok((buffer, result)) => match result {
                Ok(()) if self.error.is_none() => {
                    self.written += in_flight.len as u64;
                    self.spare.push(buffer);
                }
                // Written after a failure: past the durable offset, truncated by the next
                // append like any other stray byte.
                Ok(()) => {}
                // A failed write may have written part of the buffer: none of it counts,
                // and the next append truncates it away.
                Err(e) => self.fail(e),
            },
            Err(join) => self.fail(io::Error::other(format!("write task failed: {join}"))),
        }
    }

    fn fail(&mut self, error: io::Error) {
        if self.error.is_none() {
            self.error = Some(error);
        }
        // Whatever is buffered will never be written: give the memory back now.
        self.give_back();
    }

    /// Hands the buffers not being written (the fill and the spares) back to the pool.
    fn give_back(&mut self) {
        self.deferred.clear();
        let fill = std::mem::replace(&mut self.fill, Buffer::empty());
        self.pool
            .give(std::iter::once(fill).chain(self.spare.drain(..)));
    }
}

impl Drop for PartWriter {
    /// The buffers not being written go back to the pool (those of writes still running, on a
    /// cancelled append, are freed by their tasks).
    fn drop(&mut self) {
        self.give_back();
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

    fn part(path: &Path, direct_io: bool) -> PartFile {
        let file = OpenOptions::new().write(true).open(path).unwrap();
        PartFile::new(file, path, direct_io)
    }

    /// A writer with a pool of its own.
    fn writer(file: PartFile, offset: u64, buffer_size: usize) -> PartWriter {
        let pool = Arc::new(BufferPool::new(buffer_size, IDLE_WRITE_BUFFERS));
        PartWriter::new(file, offset, pool, buffer_size)
    }

    fn read(path: &Path) -> Vec<u8> {
        let mut stored = Vec::new();
        File::open(path).unwrap().read_to_end(&mut stored).unwrap();
        stored
    }

    #[tokio::test]
    async fn holds_at_most_its_buffers_whatever_the_chunk_sizes() {
        for direct_io in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("part");
            File::create(&path).unwrap();
            let buffer = 4096;
            let mut writer = writer(part(&path, direct_io), 0, buffer);
            assert_eq!(
                writer.max_held_bytes(),
                WRITE_BUFFERS * (2 * buffer + DIRECT_ALIGN)
            );

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
                writer.push(Bytes::from(chunk.clone())).await;
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
            assert_eq!(read(&path), expected, "direct_io {direct_io}");
        }
    }

    #[tokio::test]
    async fn the_default_bound_is_a_few_mebibytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        File::create(&path).unwrap();
        let mut writer = writer(part(&path, true), 0, WRITE_BUFFER_SIZE);
        // 64 MiB in 64 KiB chunks, the shape of a large PATCH.
        let chunk = pattern(64 * 1024, 3);
        for _ in 0..1024 {
            writer.push(Bytes::from(chunk.clone())).await;
            assert!(writer.held_bytes() <= writer.max_held_bytes());
        }
        assert!(writer.max_held_bytes() <= 9 * 1024 * 1024);
        let (durable, error) = writer.finish().await;
        assert!(error.is_none());
        assert_eq!(durable, 64 * 1024 * 1024);
    }

    /// Appends that start and end anywhere: unaligned heads and tails around direct writes,
    /// each append continuing where the previous one ended.
    #[tokio::test]
    async fn appends_at_unaligned_offsets_store_every_byte_in_place() {
        for direct_io in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("part");
            File::create(&path).unwrap();
            let data = pattern(3 * 16384 + 4096 * 5 + 77, 9);
            // One pool for every append: each reuses buffers still holding the bytes of the
            // previous one, which must never reach the file.
            let pool = Arc::new(BufferPool::new(16_384, IDLE_WRITE_BUFFERS));
            let mut offset = 0;
            for (i, len) in [1, 4095, 10_000, 4096, 3, 16_384 + 100, 8192]
                .into_iter()
                .enumerate()
            {
                let end = (offset + len).min(data.len());
                let mut writer = PartWriter::new(
                    part(&path, direct_io),
                    offset as u64,
                    Arc::clone(&pool),
                    16_384,
                );
                // Odd chunk sizes inside each append too.
                for chunk in data[offset..end].chunks(1000 + i * 333) {
                    writer.push(Bytes::copy_from_slice(chunk)).await;
                }
                let (durable, error) = writer.finish().await;
                assert!(error.is_none());
                assert_eq!(durable, (end - offset) as u64);
                offset = end;
            }
            let mut writer = PartWriter::new(
                part(&path, direct_io),
                offset as u64,
                Arc::clone(&pool),
                16_384,
            );
            writer.push(Bytes::copy_from_slice(&data[offset..])).await;
            let (durable, error) = writer.finish().await;
            assert!(error.is_none());
            assert_eq!(durable, (data.len() - offset) as u64);
            assert_eq!(read(&path), data, "direct_io {direct_io}");
        }
    }

    #[tokio::test]
    async fn a_failed_write_counts_nothing_of_its_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        File::create(&path).unwrap();
        // A read-only handle and no direct one: every write fails.
        let file = PartFile {
            buffered: File::open(&path).unwrap(),
            direct: None,
            direct_ok: AtomicBool::new(false),
        };
        let mut writer = writer(file, 0, 8);
        // More 8-byte buffers than may be in flight: a push waits for a failed write.
        for _ in 0..WRITE_BUFFERS {
            writer.push(Bytes::from_static(&[1; 20])).await;
        }
        assert!(writer.failed());
        assert!(writer.held_bytes() <= writer.max_held_bytes());
        let (durable, error) = writer.finish().await;
        assert_eq!(durable, 0);
        assert!(error.is_some());
    }

    #[tokio::test]
    async fn buffers_are_reused_by_the_next_append_and_the_pool_keeps_a_bounded_few() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        File::create(&path).unwrap();
        let size = 4 * DIRECT_ALIGN;
        let pool = Arc::new(BufferPool::new(size, 2));
        let data = pattern(10 * size + 123, 5);

        let mut first = PartWriter::new(part(&path, true), 0, Arc::clone(&pool), size);
        first.push(Bytes::copy_from_slice(&data[..5 * size])).await;
        let (durable, error) = first.finish().await;
        assert!(error.is_none());
        assert_eq!(durable, 5 * size as u64);
        // Up to WRITE_BUFFERS buffers were in use; the pool kept two of them.
        assert_eq!(pool.idle(), 2);

        // A smaller window from a full-size idle buffer, at an unaligned offset.
        let mut second =
            PartWriter::new(part(&path, true), 5 * size as u64, Arc::clone(&pool), 1000);
        assert_eq!(pool.idle(), 1);
        second.push(Bytes::copy_from_slice(&data[5 * size..])).await;
        let (durable, error) = second.finish().await;
        assert!(error.is_none());
        assert_eq!(durable, (data.len() - 5 * size) as u64);
        assert_eq!(pool.idle(), 2);
        assert_eq!(read(&path), data);
    }

    #[tokio::test]
    async fn a_dropped_writer_gives_its_buffers_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        File::create(&path).unwrap();
        let pool = Arc::new(BufferPool::new(DIRECT_ALIGN, IDLE_WRITE_BUFFERS));
        let mut writer = PartWriter::new(part(&path, true), 0, Arc::clone(&pool), DIRECT_ALIGN);
        writer.push(Bytes::from(pattern(100, 1))).await;
        assert_eq!(pool.idle(), 0);
        drop(writer);
        assert_eq!(pool.idle(), 1);
    }
}
