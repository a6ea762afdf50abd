//! An optional [`MediaInspector`] that reads the packets with FFmpeg's `ffprobe`.
//!
//! Selected by name (`ROUGHY_MEDIA_PROBE=ffprobe`, see [`crate::inspector_from_name`]); the
//! default stays pure Rust. What it does:
//! - sniffing is the pure-Rust [`sniff`]: the contract's format table is closed, so the
//!   formats ffprobe could add (AVI, FLV, MPEG-TS, WMV, 3GP) are still refused at the first
//!   chunk until the table gains them;
//! - the stored object is copied to a temporary file (in bounded 8 KiB steps; the file needs
//!   as much free space in the temp dir as the object's size), because `ffprobe` must seek
//!   (an MP4's `moov` may sit at the end) and the blob reader is not a path;
//! - what the file states comes from the same header readers as [`SymphoniaInspector`]
//!   (exact: the ISO movie header, FLAC STREAMINFO, Xing/LAME, the WAV/AIFF sizes, Opus
//!   pre-skip), falling back to ffprobe's `format=duration` where they cannot open the file;
//! - `ffprobe` runs twice as a subprocess (no shell, `kill_on_drop`, one deadline for both):
//!   once for the streams and the container duration (JSON), once to list every packet,
//!   streamed line by line (memory stays flat whatever the file's length);
//! - it is confined to the one file: the demuxer is the sniffed format's (`-f`, so no other
//!   demuxer, such as HLS or concat, reads references out of the bytes), the input is a
//!   `file:` URL and `-protocol_whitelist file` refuses any other protocol; its address space
//!   is capped (`RLIMIT_AS`, 1 GiB by default, [`FfprobeInspector::with_memory_limit`]); the
//!   staged file's path never reaches a failure message;
//! - the verdict follows the same rules and failure codes as the default prober.
//!
//! It does not decode: corrupt audio or video that still demuxes is not noticed (that needs
//! `ffmpeg -f null`, a full decode). What demuxing shows is checked: packets ending short of a
//! complete file, and audio packets whose durations add up to well under the stream's stated
//! duration (a FLAC or Ogg parser resynchronising past garbage).
//!
//! [`SymphoniaInspector`]: crate::SymphoniaInspector

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use roughy_app::ports::{BlobReader, MediaInfo, MediaInspector, ProbeError};
use roughy_domain::{AssetFailure, MediaFormat};
use serde::Deserialize;
use tempfile::NamedTempFile;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{timeout_at, Instant};
use tracing::debug;

use crate::probe::{self, Evidence, Play};
use crate::{codes, sniff};

/// How long both `ffprobe` runs of one probe may take together, by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The address space each `ffprobe` run may map, by default.
const DEFAULT_MEMORY_LIMIT: u64 = 1024 * 1024 * 1024;

/// How much of `ffprobe`'s error output goes into a failure message.
const MAX_MESSAGE: usize = 300;

/// The [`MediaInspector`] backed by the `ffprobe` executable.
#[derive(Clone, Debug)]
pub struct FfprobeInspector {
    program: PathBuf,
    timeout: Duration,
    memory_limit: u64,
}

impl Default for FfprobeInspector {
    fn default() -> Self {
        Self::new()
    }
}

impl FfprobeInspector {
    /// Runs `ffprobe` from the `PATH`, with a 120 s deadline per probe.
    pub fn new() -> Self {
        Self {
            program: PathBuf::from("ffprobe"),
            timeout: DEFAULT_TIMEOUT,
            memory_limit: DEFAULT_MEMORY_LIMIT,
        }
    }

    /// Whether the executable runs (`ffprobe -version` succeeds). Blocking: for start-up
    /// checks and tests.
    pub fn is_available(&self) -> bool {
        std::process::Command::new(&self.program)
            .arg("-version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Runs this executable instead.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// How long the `ffprobe` runs of one probe may take together. A probe that takes longer
    /// fails the asset with `media_unreadable` (ffprobe reads headers and packets, no decoding:
    /// a file that keeps it busy that long is pathological).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How much address space (bytes) each `ffprobe` run may map (`RLIMIT_AS`; default 1 GiB).
    /// A run that needs more fails its allocations: the file fails `media_unreadable`. The
    /// program itself maps some 270 MiB of libraries (Debian 12's FFmpeg 5.1); a limit too small
    /// for them is a deployment error (the loader exits 127), retried like a missing program.
    ///
    /// The limit is set on the child right after it starts (`prlimit`; the workspace forbids the
    /// unsafe `pre_exec` hook that would set it before `exec`): the dynamic loader may map
    /// libraries before it applies, but no input byte is read before it does.
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// The streams and the container's duration (a small JSON answer, collected whole).
    async fn metadata(
        &self,
        path: &Path,
        sniffed: MediaFormat,
        deadline: Instant,
    ) -> Result<Metadata, Answer> {
        let mut command = self.command(
            &[
                "-show_entries",
                "format=duration:stream=index,codec_type,codec_name,time_base,duration\
                 :stream_disposition=attached_pic",
                "-of",
                "json",
            ],
            path,
            sniffed,
        );
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = self.spawn(&mut command)?;
        // On timeout the child is dropped, which kills it (`kill_on_drop`).
        let output = match timeout_at(deadline, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(Answer::CannotRun(self.cannot_run(&e))),
            Err(_) => return Err(Answer::TimedOut),
        };
        if output.status.code() == Some(LOADER_FAILED) {
            return Err(Answer::CannotRun(format!(
                "{} did not start: {}",
                self.program.display(),
                excerpt(&output.stderr, path)
            )));
        }
        if !output.status.success() {
            return Err(Answer::Refused(excerpt(&output.stderr, path)));
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| Answer::Refused(format!("unexpected ffprobe output: {e}")))
    }

    /// Lists every packet, streamed: per stream, how many and where the last one ends (in the
    /// stream's time base).
    async fn packets(
        &self,
        path: &Path,
        sniffed: MediaFormat,
        deadline: Instant,
    ) -> Result<PacketScan, Answer> {
        let mut command = self.command(
            &[
                "-show_entries",
                "packet=stream_index,pts,dts,duration",
                "-of",
                "compact=p=0",
            ],
            path,
            sniffed,
        );
        // Errors about the packets were reported by the metadata run already, or show as
        // missing packets here.
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = self.spawn(&mut command)?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Answer::CannotRun("ffprobe's output is not piped".to_owned()))?;
        let read = async {
            let mut scan = PacketScan::default();
            let mut lines = BufReader::new(stdout).lines();
            while let Some(line) = lines.next_line().await? {
                scan.add(&line);
            }
            let status = child.wait().await?;
            Ok::<_, io::Error>((scan, status))
        };
        // On timeout the child is dropped, which kills it (`kill_on_drop`).
        match timeout_at(deadline, read).await {
            Ok(Ok((scan, status))) if status.success() => Ok(scan),
            Ok(Ok((_, status))) => Err(Answer::Refused(format!(
                "ffprobe stopped listing packets ({status})"
            ))),
            Ok(Err(e)) => Err(Answer::CannotRun(format!("reading ffprobe's output: {e}"))),
            Err(_) => Err(Answer::TimedOut),
        }
    }

    /// `ffprobe -v error -protocol_whitelist file -f <demuxer> <args> file:<path>`, with no
    /// shell, no stdin, killed when dropped.
    fn command(&self, args: &[&str], path: &Path, sniffed: MediaFormat) -> Command {
        let mut command = Command::new(&self.program);
        command
            .arg("-v")
            .arg("error")
            .arg("-protocol_whitelist")
            .arg("file")
            .arg("-f")
            .arg(demuxer(sniffed))
            .args(args)
            // A URL, so that no part of the path reads as an option or another protocol.
            .arg(input_url(path))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Starts `command` and caps its address space.
    fn spawn(&self, command: &mut Command) -> Result<Child, Answer> {
        let child = command
            .spawn()
            .map_err(|e| Answer::CannotRun(self.cannot_run(&e)))?;
        match (child.id(), limit_memory(&child, self.memory_limit)) {
            // Gone already: there is nothing left to limit.
            (None, _) => Ok(child),
            (Some(_), Ok(())) => Ok(child),
            (Some(_), Err(e)) if e.raw_os_error() == Some(ESRCH) => Ok(child),
            // Dropping the child kills it.
            (Some(_), Err(e)) => Err(Answer::CannotRun(format!(
                "cannot limit the memory of {}: {e}",
                self.program.display()
            ))),
        }
    }

    /// Why the executable could not run.
    fn cannot_run(&self, err: &io::Error) -> String {
        format!("cannot run {}: {err}", self.program.display())
    }

    /// Measures the staged copy.
    async fn measure(&self, staged: &Staged, sniffed: MediaFormat) -> Result<MediaInfo, Answer> {
        let deadline = Instant::now() + self.timeout;
        let path = staged.file.path();
        let meta = self.metadata(path, sniffed, deadline).await?;
        let streams: Vec<&Stream> = meta.streams.iter().filter(|s| s.is_media()).collect();
        if streams.is_empty() {
            return Err(Answer::Failed(failure(
                codes::UNREADABLE,
                "no audio or video stream",
            )));
        }
        let header = match &staged.header {
            Ok(header) => *header,
            Err(_) => {
                check_codec(&streams, sniffed)?;
                Header {
                    // ffprobe's container duration is only an estimate for bare frame streams.
                    stated: meta
                        .duration()
                        .filter(|_| !matches!(sniffed, MediaFormat::Mp3 | MediaFormat::Aac)),
                    complete_at: None,
                }
            }
        };
        let scan = self.packets(path, sniffed, deadline).await?;
        let measured = streams
            .iter()
            .filter_map(|s| Some(scan.end_secs(s.index, s.time_base()?)))
            .reduce(f64::max)
            .unwrap_or_default();
        // What the audio packets add up to, against the stream's duration, where both are
        // the codec's framing (ffprobe's stream duration is an estimate for MP3 and ADTS).
        let played = if probe::durations_are_framing(sniffed)
            && !matches!(sniffed, MediaFormat::Mp3 | MediaFormat::Aac)
        {
            streams
                .iter()
                .filter(|s| s.codec_type.as_deref() == Some("audio"))
                .filter_map(|s| {
                    Some(Play {
                        played: scan.played_secs(s.index, s.time_base()?)?,
                        stated: s.duration()?,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let evidence = Evidence {
            stated: header.stated,
            complete_at: header.complete_at,
            file_len: Some(staged.len),
            packets: streams.iter().map(|s| scan.count(s.index)).sum(),
            damage: None,
            measured,
            played,
        };
        debug!(?sniffed, ?evidence, "probed with ffprobe");
        let duration = probe::verdict(&evidence).map_err(Answer::from_probe)?;
        let has_video = streams
            .iter()
            .any(|s| s.codec_type.as_deref() == Some("video"));
        Ok(MediaInfo {
            duration,
            format: probe::refine(sniffed, has_video),
        })
    }
}

#[async_trait]
impl MediaInspector for FfprobeInspector {
    fn sniff(&self, head: &[u8]) -> Option<MediaFormat> {
        sniff(head)
    }

    async fn probe(
        &self,
        reader: Box<dyn BlobReader>,
        sniffed: MediaFormat,
    ) -> Result<MediaInfo, ProbeError> {
        // Copying and reading the headers is blocking work.
        let staged = match tokio::task::spawn_blocking(move || stage(reader, sniffed)).await {
            Ok(staged) => staged?,
            Err(join) if join.is_panic() => {
                return Err(failure(
                    codes::UNREADABLE,
                    "the media parser gave up on this file",
                ))
            }
            Err(join) => return Err(ProbeError::Transient(format!("probe task ended: {join}"))),
        };
        match (self.measure(&staged, sniffed).await, &staged.header) {
            (Ok(info), _) => Ok(info),
            (Err(Answer::CannotRun(message)), _) => Err(ProbeError::Transient(message)),
            // Neither reader makes sense of the file: the header reader's code is the more
            // precise (`media_truncated` for a cut MP4, …).
            (Err(_), Err(header_failure)) => Err(ProbeError::Media(header_failure.clone())),
            (Err(Answer::Failed(e)), Ok(_)) => Err(e),
            (Err(Answer::Refused(message)), Ok(_)) => Err(failure(codes::UNREADABLE, &message)),
            (Err(Answer::TimedOut), Ok(_)) => Err(failure(
                codes::UNREADABLE,
                &format!(
                    "ffprobe did not finish within {} s",
                    self.timeout.as_secs_f64()
                ),
            )),
        }
    }
}

/// How an `ffprobe` run ended when it produced no measurement.
#[derive(Debug)]
enum Answer {
    /// The executable could not run (missing, not executable): a deployment problem, retried.
    CannotRun(String),
    /// It ran past the deadline and was killed.
    TimedOut,
    /// It ran and refused the file (its error output).
    Refused(String),
    /// It ran; the verdict on what it found is a failure.
    Failed(ProbeError),
}

impl Answer {
    fn from_probe(err: ProbeError) -> Self {
        match err {
            ProbeError::Transient(message) => Self::CannotRun(message),
            media => Self::Failed(media),
        }
    }
}

/// The object copied to a temporary file (deleted when dropped), and what its headers state.
struct Staged {
    file: NamedTempFile,
    len: u64,
    header: Result<Header, AssetFailure>,
}

/// What the header readers found the file to state.
#[derive(Clone, Copy, Debug)]
struct Header {
    stated: Option<f64>,
    complete_at: Option<u64>,
}

/// Copies `reader` to a temporary file and reads its headers with the pure-Rust readers
/// (blocking).
fn stage(mut reader: Box<dyn BlobReader>, sniffed: MediaFormat) -> Result<Staged, ProbeError> {
    if reader.byte_len() == Some(0) {
        return Err(failure(codes::UNREADABLE, "the file is empty"));
    }
    let mut file = tempfile::Builder::new()
        .prefix("roughy-probe-")
        .suffix(&format!(".{}", sniffed.extension()))
        .tempfile()
        .map_err(|e| ProbeError::Transient(format!("creating a temp file: {e}")))?;
    reader.seek(SeekFrom::Start(0)).map_err(transient)?;
    // `io::copy` moves 8 KiB at a time.
    let len = io::copy(&mut reader, file.as_file_mut()).map_err(transient)?;
    if len == 0 {
        return Err(failure(codes::UNREADABLE, "the file is empty"));
    }
    let copy = StagedReader {
        file: file.reopen().map_err(transient)?,
        len,
    };
    let options = probe::Options {
        decode_audio: false,
    };
    // symphonia asserts on some malformed input instead of returning an error: that is one
    // more file it cannot open, and ffprobe may still read it.
    let opened = panic::catch_unwind(AssertUnwindSafe(|| {
        probe::open(Box::new(copy), sniffed, options)
    }))
    .unwrap_or_else(|_| {
        Err(failure(
            codes::UNREADABLE,
            "the media parser gave up on this file",
        ))
    });
    let header = match opened {
        Ok(opened) => Ok(Header {
            stated: opened.stated_secs(),
            complete_at: opened.complete_at(),
        }),
        Err(ProbeError::Media(f)) => Err(f),
        Err(transient) => return Err(transient),
    };
    Ok(Staged { file, len, header })
}

/// The staged copy as a [`BlobReader`], for the header readers.
struct StagedReader {
    file: File,
    len: u64,
}

impl Read for StagedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for StagedReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl BlobReader for StagedReader {
    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

/// `ffprobe -of json` output: the streams and the container.
#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    streams: Vec<Stream>,
    #[serde(default)]
    format: Option<Container>,
}

impl Metadata {
    /// The container's duration in seconds, when ffprobe states one.
    fn duration(&self) -> Option<f64> {
        self.format
            .as_ref()?
            .duration
            .as_deref()?
            .parse()
            .ok()
            .filter(|secs: &f64| secs.is_finite() && *secs > 0.0)
    }
}

#[derive(Debug, Deserialize)]
struct Container {
    duration: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    time_base: Option<String>,
    /// Seconds, as text (`"3.000000"`).
    duration: Option<String>,
    #[serde(default)]
    disposition: Disposition,
}

#[derive(Debug, Default, Deserialize)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

impl Stream {
    /// Audio, or video that is not cover art.
    fn is_media(&self) -> bool {
        match self.codec_type.as_deref() {
            Some("audio") => true,
            Some("video") => self.disposition.attached_pic == 0,
            _ => false,
        }
    }

    /// The stream's duration in seconds, when ffprobe states one.
    fn duration(&self) -> Option<f64> {
        self.duration
            .as_deref()?
            .parse()
            .ok()
            .filter(|secs: &f64| secs.is_finite() && *secs > 0.0)
    }

    /// The time base (`"1/48000"`) as `(numerator, denominator)`.
    fn time_base(&self) -> Option<(i64, i64)> {
        let (num, den) = self.time_base.as_deref()?.split_once('/')?;
        let (num, den) = (num.parse().ok()?, den.parse().ok()?);
        (num > 0 && den > 0).then_some((num, den))
    }
}

/// Fails with `format_mismatch` when the first audio stream's codec contradicts the sniffed
/// format (where the format implies one codec).
fn check_codec(streams: &[&Stream], sniffed: MediaFormat) -> Result<(), Answer> {
    let expected: &[&str] = match sniffed {
        MediaFormat::Mp3 => &["mp3", "mp2", "mp1"],
        MediaFormat::Flac => &["flac"],
        MediaFormat::Ogg => &["vorbis"],
        MediaFormat::Opus => &["opus"],
        MediaFormat::Aac => &["aac"],
        _ => return Ok(()),
    };
    let codec = streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"))
        .and_then(|s| s.codec_name.as_deref());
    match codec {
        Some(codec) if expected.contains(&codec) => Ok(()),
        _ => Err(Answer::Failed(failure(
            codes::FORMAT_MISMATCH,
            &format!("the bytes are not {}", sniffed.extension().to_uppercase()),
        ))),
    }
}

/// Per stream: packets seen, the latest end (`pts`, else `dts`, plus `duration`) and the sum
/// of the durations.
#[derive(Debug, Default)]
struct PacketScan {
    streams: HashMap<u32, StreamScan>,
}

/// One stream's packets so far.
#[derive(Debug)]
struct StreamScan {
    count: u64,
    /// In the stream's time base; `i64::MIN` before any timestamp.
    end: i64,
    /// The sum of the durations packets state, in the stream's time base. (In the formats this
    /// is compared for, a packet without a duration is bytes the parser could not frame.)
    played: i64,
    /// Packets that stated a duration.
    timed: u64,
}

impl PacketScan {
    /// Adds one `stream_index=0|pts=0|dts=0|duration=1024` line (`N/A` where unknown).
    fn add(&mut self, line: &str) {
        let mut index = None;
        let (mut pts, mut dts, mut duration) = (None, None, None);
        for field in line.split('|') {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let number = value.trim().parse::<i64>().ok();
            match key {
                "stream_index" => index = value.trim().parse::<u32>().ok(),
                "pts" => pts = number,
                "dts" => dts = number,
                "duration" => duration = number,
                _ => {}
            }
        }
        let Some(index) = index else {
            return;
        };
        let entry = self.streams.entry(index).or_insert(StreamScan {
            count: 0,
            end: i64::MIN,
            played: 0,
            timed: 0,
        });
        entry.count += 1;
        let duration = duration.filter(|d| *d > 0);
        if let Some(ts) = pts.or(dts) {
            entry.end = entry.end.max(ts.saturating_add(duration.unwrap_or(0)));
        }
        if let Some(d) = duration {
            entry.played = entry.played.saturating_add(d);
            entry.timed += 1;
        }
    }

    /// Packets of stream `index`.
    fn count(&self, index: u32) -> u64 {
        self.streams.get(&index).map_or(0, |s| s.count)
    }

    /// Where stream `index`'s packets end, in seconds (0 without packets).
    fn end_secs(&self, index: u32, (num, den): (i64, i64)) -> f64 {
        match self.streams.get(&index) {
            Some(s) if s.end > 0 => s.end as f64 * num as f64 / den as f64,
            _ => 0.0,
        }
    }

    /// What the durations of stream `index`'s packets add up to, in seconds, when any packet
    /// states one.
    fn played_secs(&self, index: u32, (num, den): (i64, i64)) -> Option<f64> {
        let s = self.streams.get(&index).filter(|s| s.timed > 0)?;
        Some(s.played as f64 * num as f64 / den as f64)
    }
}

/// The exit status of a program the dynamic loader could not start (missing or unmappable
/// libraries, as under too small a memory limit).
const LOADER_FAILED: i32 = 127;

/// `errno` for "no such process".
const ESRCH: i32 = 3;

/// FFmpeg's demuxer for `format` (`ffprobe -formats`).
fn demuxer(format: MediaFormat) -> &'static str {
    match format {
        MediaFormat::Mp3 => "mp3",
        MediaFormat::Wav => "wav",
        MediaFormat::Aiff => "aiff",
        MediaFormat::Flac => "flac",
        MediaFormat::Ogg | MediaFormat::Opus => "ogg",
        MediaFormat::Aac => "aac",
        MediaFormat::M4a | MediaFormat::Mp4 | MediaFormat::Mov => "mov",
        MediaFormat::Mka | MediaFormat::Mkv | MediaFormat::Webm => "matroska",
    }
}

/// `path` as a `file:` URL.
fn input_url(path: &Path) -> OsString {
    let mut url = OsString::from("file:");
    url.push(path);
    url
}

/// Caps `child`'s address space at `bytes` (soft and hard).
#[cfg(target_os = "linux")]
fn limit_memory(child: &Child, bytes: u64) -> io::Result<()> {
    let Some(pid) = child.id() else {
        return Ok(());
    };
    let pid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    rlimit::prlimit(pid, rlimit::Resource::AS, Some((bytes, bytes)), None)
}

/// Elsewhere `prlimit` does not exist: no cap (the service is deployed on Linux).
#[cfg(not(target_os = "linux"))]
fn limit_memory(_child: &Child, _bytes: u64) -> io::Result<()> {
    Ok(())
}

/// The start of `stderr`, as one line of text, with the staged file's path (which ffprobe
/// names in its messages) replaced by `input`.
fn excerpt(stderr: &[u8], path: &Path) -> String {
    let text = String::from_utf8_lossy(stderr);
    let url = input_url(path);
    let text = text
        .replace(&*url.to_string_lossy(), "input")
        .replace(&*path.to_string_lossy(), "input");
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_MESSAGE) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None if line.is_empty() => "ffprobe refused the file".to_owned(),
        None => line,
    }
}

/// A final failure.
fn failure(code: &str, message: &str) -> ProbeError {
    probe::failure(code, message)
}

/// A storage error: worth trying again.
fn transient(err: io::Error) -> ProbeError {
    ProbeError::Transient(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_lines_give_counts_and_ends() {
        let mut scan = PacketScan::default();
        scan.add("stream_index=0|pts=-312|dts=-312|duration=960");
        scan.add("stream_index=0|pts=648|dts=648|duration=960");
        scan.add("stream_index=1|pts=N/A|dts=1000|duration=N/A");
        scan.add("garbage");
        assert_eq!(scan.count(0), 2);
        assert_eq!(scan.count(1), 1);
        assert_eq!(scan.count(2), 0);
        assert_eq!(scan.end_secs(0, (1, 48_000)), 1608.0 / 48_000.0);
        assert_eq!(scan.end_secs(1, (1, 1000)), 1.0);
        assert_eq!(scan.end_secs(2, (1, 1000)), 0.0);
        assert_eq!(scan.played_secs(0, (1, 48_000)), Some(1920.0 / 48_000.0));
        assert_eq!(
            scan.played_secs(1, (1, 1000)),
            None,
            "no packet states a duration"
        );
        assert_eq!(scan.played_secs(2, (1, 1000)), None);
    }

    #[test]
    fn metadata_parses_streams_cover_art_and_duration() {
        let json = br#"{"programs": [], "streams": [
            {"index": 0, "codec_name": "mp3", "codec_type": "audio", "time_base": "1/14112000",
             "disposition": {"attached_pic": 0}},
            {"index": 1, "codec_name": "mjpeg", "codec_type": "video", "time_base": "1/90000",
             "disposition": {"attached_pic": 1}}
        ], "format": {"duration": "3.030204"}}"#;
        let meta: Metadata = serde_json::from_slice(json).unwrap();
        assert_eq!(meta.duration(), Some(3.030204));
        let media: Vec<&Stream> = meta.streams.iter().filter(|s| s.is_media()).collect();
        assert_eq!(media.len(), 1, "cover art is not video");
        assert_eq!(media[0].time_base(), Some((1, 14_112_000)));
        assert!(check_codec(&media, MediaFormat::Mp3).is_ok());
        assert!(matches!(
            check_codec(&media, MediaFormat::Flac),
            Err(Answer::Failed(ProbeError::Media(f))) if f.code == codes::FORMAT_MISMATCH
        ));
        let none: Metadata = serde_json::from_slice(br#"{"format": {}}"#).unwrap();
        assert_eq!(none.duration(), None);
    }

    #[test]
    fn error_output_is_cut_to_one_short_line() {
        let path = Path::new("/tmp/roughy-probe-x.mp4");
        assert_eq!(excerpt(b"", path), "ffprobe refused the file");
        assert_eq!(excerpt(b"a\n  b\n", path), "a b");
        let long = vec![b'x'; 1000];
        assert_eq!(excerpt(&long, path).chars().count(), MAX_MESSAGE + 1);
        assert_eq!(
            excerpt(b"file:/tmp/roughy-probe-x.mp4: Invalid data\n", path),
            "input: Invalid data"
        );
        assert_eq!(
            excerpt(
                b"[mov @ 0x1] /tmp/roughy-probe-x.mp4 moov atom not found",
                path
            ),
            "[mov @ 0x1] input moov atom not found"
        );
    }
}
