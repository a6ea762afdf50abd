//! Deterministic WAV content of any size, streamed without ever being held whole.
//!
//! A file is the canonical 44-byte header (`RIFF`/`WAVE`, one `fmt ` chunk: PCM, 16-bit,
//! stereo, 48 kHz, then the `data` chunk) followed by PCM noise that repeats every
//! [`PATTERN_LEN`] bytes. The pattern is generated once; every chunk the client sends is a
//! zero-copy slice of it, so the client spends its time on the network, not on producing bytes.

use std::ops::Range;
use std::sync::OnceLock;

use anyhow::{ensure, Context};
use bytes::{BufMut, Bytes, BytesMut};
use sha2::{Digest, Sha256};

/// The size of the header: `RIFF` (12) + `fmt ` (8 + 16) + `data` header (8).
pub const HEADER_LEN: u64 = 44;

/// The period of the PCM pattern, and the largest chunk [`Wav::chunks`] yields (1 MiB).
pub const PATTERN_LEN: usize = 1 << 20;

const CHANNELS: u16 = 2;
const SAMPLE_RATE: u32 = 48_000;
const BITS_PER_SAMPLE: u16 = 16;
const BLOCK_ALIGN: u16 = CHANNELS * BITS_PER_SAMPLE / 8;

/// A WAV file of a given size, described rather than stored.
#[derive(Clone, Debug)]
pub struct Wav {
    size: u64,
    header: Bytes,
}

impl Wav {
    /// A WAV file of exactly `size` bytes.
    ///
    /// # Errors
    /// When `size` cannot be a canonical PCM WAV: shorter than the header plus one frame, PCM
    /// not a whole number of frames, or larger than a RIFF size field can state (4 GiB).
    pub fn new(size: u64) -> anyhow::Result<Self> {
        let data_len = size
            .checked_sub(HEADER_LEN)
            .filter(|&len| len >= u64::from(BLOCK_ALIGN))
            .with_context(|| format!("a WAV needs more than {HEADER_LEN} bytes, not {size}"))?;
        ensure!(
            data_len % u64::from(BLOCK_ALIGN) == 0,
            "{size} bytes leave PCM that is not a whole number of {BLOCK_ALIGN}-byte frames"
        );
        let riff_len = u32::try_from(size - 8)
            .with_context(|| format!("{size} bytes do not fit a RIFF size field"))?;
        let data_len = u32::try_from(data_len).context("the data chunk is too long")?;

        let mut header = BytesMut::with_capacity(44);
        header.put_slice(b"RIFF");
        header.put_u32_le(riff_len);
        header.put_slice(b"WAVEfmt ");
        header.put_u32_le(16);
        header.put_u16_le(1); // PCM
        header.put_u16_le(CHANNELS);
        header.put_u32_le(SAMPLE_RATE);
        header.put_u32_le(SAMPLE_RATE * u32::from(BLOCK_ALIGN));
        header.put_u16_le(BLOCK_ALIGN);
        header.put_u16_le(BITS_PER_SAMPLE);
        header.put_slice(b"data");
        header.put_u32_le(data_len);
        Ok(Self {
            size,
            header: header.freeze(),
        })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The bytes of `range` (clamped to the file) as zero-copy chunks of at most
    /// [`PATTERN_LEN`] bytes.
    pub fn chunks(&self, range: Range<u64>) -> Chunks {
        Chunks {
            header: self.header.clone(),
            pattern: pattern().clone(),
            pos: range.start.min(self.size),
            end: range.end.min(self.size),
        }
    }

    /// The bytes of `range` as a streaming request body.
    pub fn body(&self, range: Range<u64>) -> reqwest::Body {
        reqwest::Body::wrap_stream(futures::stream::iter(
            self.chunks(range).map(Ok::<_, std::convert::Infallible>),
        ))
    }

    /// The SHA-256 of the whole file.
    pub fn sha256(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for chunk in self.chunks(0..self.size) {
            hasher.update(&chunk);
        }
        hasher.finalize().into()
    }
}

/// An iterator over a byte range of a [`Wav`], see [`Wav::chunks`].
#[derive(Clone, Debug)]
pub struct Chunks {
    header: Bytes,
    pattern: Bytes,
    pos: u64,
    end: u64,
}

impl Iterator for Chunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.pos >= self.end {
            return None;
        }
        let chunk = if self.pos < HEADER_LEN {
            // Both below HEADER_LEN (44): they fit a usize.
            let start = self.pos as usize;
            let stop = self.end.min(HEADER_LEN) as usize;
            self.header.slice(start..stop)
        } else {
            let pcm = self.pos - HEADER_LEN;
            // A remainder of PATTERN_LEN fits a usize.
            let start = (pcm % PATTERN_LEN as u64) as usize;
            let want = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
            let stop = PATTERN_LEN.min(start.saturating_add(want));
            self.pattern.slice(start..stop)
        };
        self.pos += chunk.len() as u64;
        Some(chunk)
    }
}

/// The PCM pattern: low-level noise from a fixed-seed xorshift, the same on every run.
fn pattern() -> &'static Bytes {
    static PATTERN: OnceLock<Bytes> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut pcm = BytesMut::with_capacity(PATTERN_LEN);
        while pcm.len() < PATTERN_LEN {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // A sample within ±4096: audible noise, far from clipping. The shift keeps 13
            // bits, so the value fits an i16 after the offset.
            let sample = ((state >> 51) as i16) - 4096;
            pcm.put_i16_le(sample);
        }
        pcm.freeze()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(wav: &Wav, range: Range<u64>) -> Vec<u8> {
        wav.chunks(range).flat_map(|c| c.to_vec()).collect()
    }

    #[test]
    fn the_header_states_the_sizes() {
        let wav = Wav::new(1 << 20).unwrap();
        let head = collect(&wav, 0..44);
        assert_eq!(&head[0..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes(head[4..8].try_into().unwrap()),
            (1 << 20) - 8
        );
        assert_eq!(&head[8..16], b"WAVEfmt ");
        assert_eq!(&head[36..40], b"data");
        assert_eq!(
            u32::from_le_bytes(head[40..44].try_into().unwrap()),
            (1 << 20) - 44
        );
    }

    #[test]
    fn any_split_yields_the_same_bytes() {
        let size = 3 * PATTERN_LEN as u64 + 44 + 4 * 1000;
        let wav = Wav::new(size).unwrap();
        let whole = collect(&wav, 0..size);
        assert_eq!(whole.len() as u64, size);
        for step in [1_000_003_u64, 16 << 20, 7, 65_536] {
            let step = step.min(size);
            let mut joined = Vec::new();
            let mut at = 0;
            while at < size {
                joined.extend(collect(&wav, at..(at + step).min(size)));
                at += step;
            }
            assert_eq!(joined, whole, "step {step}");
        }
        let hash: [u8; 32] = Sha256::digest(&whole).into();
        assert_eq!(hash, wav.sha256());
    }

    #[test]
    fn impossible_sizes_are_refused() {
        assert!(Wav::new(44).is_err());
        assert!(Wav::new(46).is_err());
        assert!(Wav::new(5 << 30).is_err());
        assert!(Wav::new(4 << 30).is_ok());
    }
}
