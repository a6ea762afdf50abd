//! Real media for the tests: generated WAV files of any length, and the committed corpus.

use std::path::PathBuf;

pub use roughy_media::synth::wav;

/// The committed media corpus.
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("media")
}

/// A corpus file's bytes.
pub fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(name)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"))
}
