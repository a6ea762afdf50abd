//! Media adapter: first-chunk sniffing and duration probing.
//!
//! [`SymphoniaInspector`] (the default, pure Rust) implements the [`MediaInspector`] port:
//! - [`sniff`] decides the format from the first bytes of an upload (at least 64), using
//!   `infer` where it is exact and small matchers of our own elsewhere;
//! - `probe` measures the stored object with `symphonia`, off the async workers, reading
//!   through the blob reader with bounded memory (the demuxers seek), and fails broken media
//!   with a precise error code (see [`codes`]).
//!
//! [`FfprobeInspector`] is the optional alternative that lists the packets with FFmpeg's
//! `ffprobe`; [`inspector_from_name`] picks one by its configured name.

mod aiff;
mod ffprobe;
mod iso;
mod matroska;
mod mp3;
mod ogg;
mod probe;
mod sniff;
mod source;
pub mod synth;

use std::sync::Arc;

use async_trait::async_trait;
use roughy_app::ports::{BlobReader, MediaInfo, MediaInspector, ProbeError};
use roughy_domain::{AssetFailure, MediaFormat};

pub use ffprobe::FfprobeInspector;
pub use sniff::sniff;

/// The inspector configured by name (`ROUGHY_MEDIA_PROBE`): `symphonia` (the pure-Rust
/// default) or `ffprobe` ([`FfprobeInspector`], running `ffprobe` from the `PATH`); `None`
/// for any other name.
pub fn inspector_from_name(name: &str) -> Option<Arc<dyn MediaInspector>> {
    match name {
        "symphonia" => Some(Arc::new(SymphoniaInspector::new())),
        "ffprobe" => Some(Arc::new(FfprobeInspector::new())),
        _ => None,
    }
}

/// The `error_code`s a probe can fail an asset with.
pub mod codes {
    /// Not media symphonia can open (unknown container, no supported track, an empty file).
    pub const UNREADABLE: &str = "media_unreadable";
    /// The packets or their decoding fail partway through the file.
    pub const CORRUPT: &str = "media_corrupt";
    /// The packets end well before the duration the file states.
    pub const TRUNCATED: &str = "media_truncated";
    /// No packets, or a duration of zero.
    pub const NO_DURATION: &str = "media_no_duration";
    /// The bytes are not the format they were sniffed as (e.g. FLAC behind an ID3 tag that
    /// was taken for MP3).
    pub const FORMAT_MISMATCH: &str = "format_mismatch";
}

/// The pure-Rust [`MediaInspector`]: sniffing by magic bytes, probing with symphonia.
#[derive(Clone, Copy, Debug)]
pub struct SymphoniaInspector {
    decode_audio: bool,
}

impl Default for SymphoniaInspector {
    fn default() -> Self {
        Self::new()
    }
}

impl SymphoniaInspector {
    /// An inspector that also decodes audio tracks while scanning, so that corrupt audio
    /// fails with `media_corrupt` instead of being billed.
    pub fn new() -> Self {
        Self { decode_audio: true }
    }

    /// Whether to decode audio tracks during the scan (default true). Without decoding the
    /// scan still checks every packet's framing and timing, at a fraction of the CPU cost.
    pub fn with_audio_decoding(mut self, decode: bool) -> Self {
        self.decode_audio = decode;
        self
    }
}

#[async_trait]
impl MediaInspector for SymphoniaInspector {
    fn sniff(&self, head: &[u8]) -> Option<MediaFormat> {
        sniff(head)
    }

    async fn probe(
        &self,
        reader: Box<dyn BlobReader>,
        sniffed: MediaFormat,
    ) -> Result<MediaInfo, ProbeError> {
        let options = probe::Options {
            decode_audio: self.decode_audio,
        };
        // Demuxing and decoding are blocking, CPU-bound work.
        match tokio::task::spawn_blocking(move || probe::probe(reader, sniffed, options)).await {
            Ok(result) => result,
            // symphonia asserts on some malformed input instead of returning an error.
            Err(join) if join.is_panic() => Err(ProbeError::Media(AssetFailure {
                code: codes::UNREADABLE.to_owned(),
                message: "the media parser gave up on this file".to_owned(),
            })),
            Err(join) => Err(ProbeError::Transient(format!("probe task ended: {join}"))),
        }
    }
}
