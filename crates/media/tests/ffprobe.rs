//! The optional ffprobe-backed inspector against the committed corpus.
//!
//! `ffprobe` must be installed (`apt-get install ffmpeg`; CI installs it): a missing program
//! fails these tests, it never skips them.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "integration test: a failed expectation is the test's failure; skipped rows are printed"
)]

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

/// A stand-in for `ffprobe` in a temp dir: a shell script with `body`, which may write to
/// `$OUT` (a file beside it). Returns the dir (kept alive by the caller) and the program.
fn fake_ffprobe(body: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("ffprobe");
    let out = dir.path().join("out");
    let script = format!("#!/bin/sh\nOUT='{}'\n{body}\n", out.display());
    std::fs::write(&program, script).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, program)
}

/// What the fake wrote to `$OUT`.
fn fake_output(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("out")).unwrap_or_default()
}

#[tokio::test]
async fn ffprobe_is_told_the_demuxer_and_may_only_read_the_local_file() {
    // Records its arguments one per line, then refuses the file the way ffprobe does: naming
    // its input.
    let (dir, program) = fake_ffprobe(
        r#"for a in "$@"; do printf '%s\n' "$a" >>"$OUT"; done
eval "last=\${$#}"
echo "$last: Invalid data found when processing input" >&2
exit 1"#,
    );
    let inspector = FfprobeInspector::new().with_program(&program);
    for (file, format, demuxer) in [
        ("sine.flac", MediaFormat::Flac, "flac"),
        ("sine.opus", MediaFormat::Opus, "ogg"),
        ("clip.mp4", MediaFormat::Mp4, "mov"),
        ("clip.webm", MediaFormat::Webm, "matroska"),
    ] {
        let _ = std::fs::remove_file(dir.path().join("out"));
        let result = inspector
            .probe(Box::new(open(&corpus_dir().join(file))), format)
            .await;
        let args: Vec<String> = fake_output(&dir).lines().map(str::to_owned).collect();
        let after = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let input = args.last().unwrap();
        // The refusal reaches `error_message` without the server's temp path.
        let message = match result {
            Err(ProbeError::Media(f)) if f.code == "media_unreadable" => f.message,
            other => panic!("{file}: {other:?}"),
        };
        let path = input.trim_start_matches("file:");
        assert!(
            !message.contains(path) && !message.contains("roughy-probe-"),
            "{file}: {message}"
        );
        assert!(message.contains("Invalid data found"), "{message}");
        assert_eq!(after("-f").as_deref(), Some(demuxer), "{file}: {args:?}");
        assert_eq!(
            after("-protocol_whitelist").as_deref(),
            Some("file"),
            "{args:?}"
        );
        assert!(input.starts_with("file:/"), "{file}: input {input}");
    }
}

#[tokio::test]
async fn ffprobe_runs_under_an_address_space_limit() {
    // Reports its own limit once the inspector had time to set it.
    let (dir, program) = fake_ffprobe(
        r#"sleep 0.3
grep 'Max address space' /proc/self/limits >"$OUT"
exit 1"#,
    );
    let limit = 512 * 1024 * 1024;
    let inspector = FfprobeInspector::new()
        .with_program(&program)
        .with_memory_limit(limit);
    let _ = inspector
        .probe(
            Box::new(open(&corpus_dir().join("sine.wav"))),
            MediaFormat::Wav,
        )
        .await;
    let line = fake_output(&dir);
    let soft: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(soft.get(3), Some(&"536870912"), "{line}");
}

#[tokio::test]
async fn a_real_ffprobe_without_enough_memory_fails_the_probe() {
    require_ffprobe();
    // Far less address space than ffprobe needs to map its own libraries and buffers.
    let inspector = FfprobeInspector::new().with_memory_limit(8 * 1024 * 1024);
    let result = inspector
        .probe(
            Box::new(open(&corpus_dir().join("clip.mp4"))),
            MediaFormat::Mp4,
        )
        .await;
    // The loader cannot map ffprobe's libraries: a deployment error, retried, never billed.
    assert!(
        matches!(&result, Err(ProbeError::Transient(m)) if m.contains("did not start")),
        "{result:?}"
    );
    // The default leaves room for the whole corpus (every_corpus_file_probes_as_expected_…).
}

#[tokio::test]
async fn a_probe_past_its_deadline_kills_ffprobe() {
    let (dir, program) = fake_ffprobe(
        r#"echo $$ >"$OUT"
exec sleep 30"#,
    );
    let inspector = FfprobeInspector::new()
        .with_program(&program)
        .with_timeout(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let result = inspector
        .probe(
            Box::new(open(&corpus_dir().join("sine.wav"))),
            MediaFormat::Wav,
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(5), "{result:?}");
    assert!(
        matches!(&result, Err(ProbeError::Media(f)) if f.message.contains("did not finish")),
        "{result:?}"
    );
    let pid = fake_output(&dir).trim().to_owned();
    assert!(!pid.is_empty());
    // Killed, and reaped soon after (tokio reaps a killed child in the background).
    let gone = (0..50).any(|_| {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = state.split_whitespace().nth(2).is_some_and(|s| s != "Z");
        if alive {
            std::thread::sleep(Duration::from_millis(100));
        }
        !alive
    });
    assert!(gone, "ffprobe (pid {pid}) still runs after its deadline");
}
