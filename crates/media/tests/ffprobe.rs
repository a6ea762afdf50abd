//! The optional ffprobe-backed inspector against the committed corpus.
//!
//! `ffprobe` must be installed (`apt-get install ffmpeg`; CI installs it): a missing program
//! fails these tests, it never skips them.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::Duration;

use roughy_app::ports::{MediaInspector, ProbeError};
use roughy_domain::MediaFormat;
use roughy_media::FfprobeInspector;

use common::{corpus_dir, expected, open, print_summary, run_corpus_except};

/// The garbled files whose damage only a decoder notices: their AAC frames are noise while the
/// sample tables (MP4, M4A, MOV) or the ADTS frame headers still list every packet. ffprobe
/// lists the packets without decoding them; the default inspector decodes and fails them.
const NEEDS_DECODING: &[&str] = &[
    "garbled_middle.m4a",
    "garbled_middle.aac",
    "garbled_middle.mp4",
    "garbled_middle.mov",
];

/// Fails loudly unless `ffprobe` runs.
fn require_ffprobe() {
    assert!(
        FfprobeInspector::new().is_available(),
        "`ffprobe -version` does not run: install FFmpeg (apt-get install ffmpeg)"
    );
}

/// The same corpus, the same expectations as the default inspector, but for the files only a
/// decoder can fail ([`NEEDS_DECODING`]).
#[tokio::test]
async fn every_corpus_file_probes_as_expected_with_ffprobe() {
    require_ffprobe();
    for row in expected()
        .iter()
        .filter(|r| NEEDS_DECODING.contains(&r.file.as_str()))
    {
        assert_eq!(row.failure.as_deref(), Some("media_corrupt"), "{row:?}");
    }
    let (passed, problems) = run_corpus_except(&FfprobeInspector::new(), NEEDS_DECODING).await;
    print_summary("media corpus (ffprobe)", passed, problems.len());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn a_missing_executable_is_transient() {
    require_ffprobe();
    let inspector = FfprobeInspector::new().with_program("/nonexistent/ffprobe");
    assert!(!inspector.is_available());
    let result = inspector
        .probe(
            Box::new(open(&corpus_dir().join("sine.wav"))),
            MediaFormat::Wav,
        )
        .await;
    assert!(
        matches!(&result, Err(ProbeError::Transient(m)) if m.contains("/nonexistent/ffprobe")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_probe_past_its_deadline_fails_the_file() {
    require_ffprobe();
    let inspector = FfprobeInspector::new().with_timeout(Duration::ZERO);
    let result = inspector
        .probe(
            Box::new(open(&corpus_dir().join("clip.mp4"))),
            MediaFormat::Mp4,
        )
        .await;
    assert!(
        matches!(&result, Err(ProbeError::Media(f))
            if f.code == "media_unreadable" && f.message.contains("did not finish")),
        "{result:?}"
    );
}
