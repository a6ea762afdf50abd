//! The disk's limits: a sequential write of the same size, `fdatasync`ed once at the end (as
//! `dd conv=fsync` does it, or with `O_DIRECT` as `dd oflag=direct conv=fsync`), and the
//! filesystem work one small durable upload needs at the least.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::wav::Wav;

/// How a sequential write goes to the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WriteMode {
    /// Through the page cache, synced at the end (`dd conv=fsync`).
    Buffered,
    /// `O_DIRECT`, past the page cache, synced at the end (`dd oflag=direct conv=fsync`).
    Direct,
}

impl WriteMode {
    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Buffered => "buffered",
            Self::Direct => "O_DIRECT",
        }
    }
}

/// The alignment `O_DIRECT` needs of memory, offsets and lengths.
const DIRECT_ALIGN: usize = 4096;

/// Writes `size` bytes (the start of `wav`, repeated) to a new file at `path` in `block`-byte
/// writes, syncs its data, and returns the time from creating the file to the end of the
/// sync. The file is removed afterwards (not timed), so the next write reuses what this one
/// used (blocks, page-cache pages), as the service's next upload does after a delete.
///
/// # Errors
/// Any I/O failure (the file is removed all the same); `Unsupported` for `O_DIRECT` where the
/// platform or the filesystem has none.
pub fn sequential_write(
    path: &Path,
    wav: &Wav,
    size: u64,
    block: usize,
    mode: WriteMode,
) -> io::Result<Duration> {
    // The bytes of an upload, laid out once in a buffer of one block, aligned for O_DIRECT.
    let mut storage = vec![0_u8; block + DIRECT_ALIGN];
    let base = (DIRECT_ALIGN - storage.as_ptr().addr() % DIRECT_ALIGN) % DIRECT_ALIGN;
    let buffer = &mut storage[base..base + block];
    let mut at = 0;
    for chunk in wav.chunks(0..block as u64) {
        buffer[at..at + chunk.len()].copy_from_slice(&chunk);
        at += chunk.len();
    }
    if mode == WriteMode::Direct && (size % DIRECT_ALIGN as u64 != 0 || block % DIRECT_ALIGN != 0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "O_DIRECT needs sizes in whole 4 KiB blocks",
        ));
    }

    let result = write_and_sync(path, size, buffer, mode);
    let removed = fs::remove_file(path);
    let elapsed = result?;
    removed?;
    Ok(elapsed)
}

fn write_and_sync(path: &Path, size: u64, buffer: &[u8], mode: WriteMode) -> io::Result<Duration> {
    let started = Instant::now();
    let mut file = open_new(path, mode)?;
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left).map_or(buffer.len(), |l| l.min(buffer.len()));
        file.write_all(&buffer[..n])?;
        left -= n as u64;
    }
    file.sync_data()?;
    Ok(started.elapsed())
}

fn open_new(path: &Path, mode: WriteMode) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    if mode == WriteMode::Direct {
        direct(&mut options)?;
    }
    options.open(path)
}

#[cfg(target_os = "linux")]
fn direct(options: &mut OpenOptions) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(libc::O_DIRECT);
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn direct(_options: &mut OpenOptions) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "O_DIRECT is measured on Linux only",
    ))
}

/// The filesystem work of `count` small durable uploads of `wav`, one after the other, done
/// directly: create the file and sync its directory, write the bytes and `fdatasync`, move it
/// to `objects` and sync both directories (the steps the local-disk sink takes to make an
/// upload durable and final). Returns the uploads per second. Nothing else — no HTTP, no
/// repository — so the gap between this and the service's rate is the rest of its work.
///
/// # Errors
/// Any I/O failure.
pub fn durable_small_files(dir: &Path, wav: &Wav, count: usize) -> io::Result<f64> {
    let staging = dir.join("staging");
    let objects = dir.join("objects");
    fs::create_dir_all(&staging)?;
    fs::create_dir_all(&objects)?;
    let bytes: Vec<u8> = wav.chunks(0..wav.size()).flat_map(|c| c.to_vec()).collect();
    let started = Instant::now();
    for i in 0..count {
        let part = staging.join(format!("{i}.part"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part)?;
        File::open(&staging)?.sync_all()?;
        file.write_all(&bytes)?;
        file.sync_data()?;
        drop(file);
        fs::rename(&part, objects.join(i.to_string()))?;
        File::open(&objects)?.sync_all()?;
        File::open(&staging)?.sync_all()?;
    }
    let took = started.elapsed();
    fs::remove_dir_all(dir)?;
    Ok(count as f64 / took.as_secs_f64().max(1e-9))
}
