//! Contract rules: every supported media format end to end over HTTP (§4 format table, §6
//! processing, §7 billing, §8 downloads).
//!
//! One test per format, each with a file of the committed corpus (`tests/media/`): create the
//! asset, send its first 64 bytes (the format fields must be known from them), send the rest,
//! let it settle, then check `type`, `content_type`, `extension`, `duration_seconds` (within
//! 30 ms of the exact value in `tests/media/expected.tsv`), the charge (the ~3 s files cost
//! 1 credit: the balance and one `asset_charge` entry) and the download's `Content-Type`.
//! Plus the verdicts that are not `ready`: unsupported files are refused at the first chunk,
//! broken files end `failed` with their code and are not charged.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use roughy_tests::media::{corpus, corpus_dir};
use roughy_tests::{error_code, header_str, Tenant, TestApp};

/// How far `duration_seconds` may be from the exact duration in `expected.tsv`.
const TOLERANCE_MS: u64 = 30;

/// The size of the first PATCH: the minimum the contract decides the format from.
const FIRST_CHUNK: usize = 64;

/// A row of the contract's format table (§4).
#[derive(Clone, Copy, Debug)]
struct Format {
    media_type: &'static str,
    content_type: &'static str,
    extension: &'static str,
}

const WAV: Format = audio("audio/wav", "wav");
const MP3: Format = audio("audio/mpeg", "mp3");
const FLAC: Format = audio("audio/flac", "flac");
const OGG: Format = audio("audio/ogg", "ogg");
const OPUS: Format = audio("audio/opus", "opus");
const M4A: Format = audio("audio/mp4", "m4a");
const AAC: Format = audio("audio/aac", "aac");
const AIFF: Format = audio("audio/aiff", "aiff");
const MKA: Format = audio("audio/x-matroska", "mka");
const MP4: Format = video("video/mp4", "mp4");
const MOV: Format = video("video/quicktime", "mov");
const MKV: Format = video("video/x-matroska", "mkv");
const WEBM: Format = video("video/webm", "webm");

const fn audio(content_type: &'static str, extension: &'static str) -> Format {
    Format {
        media_type: "audio",
        content_type,
        extension,
    }
}

const fn video(content_type: &'static str, extension: &'static str) -> Format {
    Format {
        media_type: "video",
        content_type,
        extension,
    }
}

/// A row of `tests/media/expected.tsv`: `(format, duration_ms, failure)`, `None` for `-`.
fn expected(file: &str) -> (Option<String>, Option<u64>, Option<String>) {
    let table = std::fs::read_to_string(corpus_dir().join("expected.tsv")).unwrap();
    let line = table
        .lines()
        .find(|line| line.split('\t').next() == Some(file))
        .unwrap_or_else(|| panic!("{file} is not in expected.tsv"));
    let cols: Vec<&str> = line.split('\t').collect();
    assert_eq!(cols.len(), 4, "{line}");
    let dash = |s: &str| (s != "-").then(|| s.to_owned());
    (
        dash(cols[1]),
        dash(cols[2]).map(|ms| ms.parse().unwrap()),
        dash(cols[3]),
    )
}

/// The exact duration of a good corpus file, from `expected.tsv`.
fn expected_ms(file: &str) -> u64 {
    match expected(file) {
        (Some(_), Some(ms), None) => ms,
        row => panic!("{file} is not a good file in expected.tsv: {row:?}"),
    }
}

/// `duration_seconds` (`"3.000"`) in milliseconds; panics unless it has exactly 3 decimals.
fn duration_ms(asset: &Value) -> u64 {
    let text = asset["duration_seconds"]
        .as_str()
        .unwrap_or_else(|| panic!("duration_seconds: {asset}"));
    let (secs, millis) = text
        .split_once('.')
        .unwrap_or_else(|| panic!("duration_seconds {text:?} has no fraction"));
    assert_eq!(millis.len(), 3, "duration_seconds {text:?}: 3 decimals");
    secs.parse::<u64>().unwrap() * 1000 + millis.parse::<u64>().unwrap()
}

/// `asset_charge` ledger entries for `asset_id`.
async fn charges_for(app: &TestApp, t: &Tenant, asset_id: &str) -> Vec<Value> {
    app.ledger(t)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "asset_charge" && e["asset_id"] == asset_id)
        .collect()
}

/// Asserts `asset` carries the format fields of `format`.
fn assert_format(asset: &Value, format: Format, when: &str) {
    assert_eq!(asset["type"], format.media_type, "type {when}: {asset}");
    assert_eq!(
        asset["content_type"], format.content_type,
        "content_type {when}: {asset}"
    );
    assert_eq!(
        asset["extension"], format.extension,
        "extension {when}: {asset}"
    );
}

/// Uploads `bytes` as a first PATCH of 64 bytes, then the rest: returns `(the asset after the
/// first chunk, the settled asset)`.
async fn upload(app: &TestApp, t: &Tenant, project: &str, bytes: &[u8]) -> (Value, Value) {
    let (asset, url) = app.asset(t, project, bytes.len()).await;
    let id = asset["id"].as_str().unwrap();
    app.upload_all(t, &url, &bytes[..FIRST_CHUNK], FIRST_CHUNK)
        .await;
    let after_first_chunk = app.get_asset(t, id).await;
    app.upload_from(t, &url, bytes, FIRST_CHUNK, 1 << 20).await;
    (after_first_chunk, app.settled(t, id).await)
}

/// The whole flow for one good corpus file: `sniffed` is what the first chunk says (MKV for
/// Matroska audio), `format` what the settled asset says.
async fn assert_ingests_as(file: &str, sniffed: Format, format: Format) {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let bytes = corpus(file);
    let want_ms = expected_ms(file);

    let before = app.balance(&t).await;
    let (first, settled) = upload(&app, &t, &project, &bytes).await;
    assert_eq!(first["state"], "pending_upload", "{first}");
    assert_format(&first, sniffed, "after the first 64 bytes");

    let id = settled["id"].as_str().unwrap();
    assert_eq!(settled["state"], "ready", "{file}: {settled}");
    assert!(
        settled["error_code"].is_null() && settled["error_message"].is_null(),
        "{settled}"
    );
    assert_format(&settled, format, "once ready");
    assert_eq!(settled["size_bytes"], bytes.len(), "{settled}");
    let got_ms = duration_ms(&settled);
    assert!(
        got_ms.abs_diff(want_ms) <= TOLERANCE_MS,
        "{file}: duration_seconds {} is not within {TOLERANCE_MS} ms of {want_ms} ms",
        settled["duration_seconds"]
    );

    // ~3 s: one minute started, one credit.
    assert_eq!(
        before - app.balance(&t).await,
        1,
        "{file}: charged 1 credit"
    );
    let charges = charges_for(&app, &t, id).await;
    assert_eq!(charges.len(), 1, "{file}: one asset_charge: {charges:?}");
    assert_eq!(charges[0]["amount"], -1, "{charges:?}");

    // The download serves the bytes with the table's content type.
    let link = settled["download_url"]
        .as_str()
        .unwrap_or_else(|| panic!("download_url: {settled}"));
    let r = app.client.get(link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "download {file}");
    let served_type = header_str(&r, "content-type");
    assert!(
        served_type.starts_with(format.content_type),
        "{file}: Content-Type {served_type}, expected {}",
        format.content_type
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

/// One test per supported format: `test => file, format;`, or `test => file, format at the
/// first chunk, format once ready;` where processing refines it.
macro_rules! ingests {
    () => {};
    ($test:ident => $file:literal, $format:expr; $($rest:tt)*) => {
        ingests!($test => $file, $format, $format; $($rest)*);
    };
    ($test:ident => $file:literal, $sniffed:expr, $ready:expr; $($rest:tt)*) => {
        #[tokio::test]
        async fn $test() {
            assert_ingests_as($file, $sniffed, $ready).await;
        }
        ingests!($($rest)*);
    };
}

ingests! {
    wav_ingests_as_audio_wav => "sine.wav", WAV;
    mp3_with_a_lame_tag_ingests_as_audio_mpeg => "sine_cbr.mp3", MP3;
    vbr_mp3_without_xing_ingests_as_audio_mpeg => "sine_vbr_noxing.mp3", MP3;
    flac_ingests_as_audio_flac => "sine.flac", FLAC;
    ogg_vorbis_ingests_as_audio_ogg => "sine.ogg", OGG;
    ogg_opus_ingests_as_audio_opus => "sine.opus", OPUS;
    m4a_ingests_as_audio_mp4 => "sine.m4a", M4A;
    adts_aac_ingests_as_audio_aac => "sine.aac", AAC;
    aiff_ingests_as_audio_aiff => "sine.aiff", AIFF;
    matroska_audio_is_mkv_at_the_first_chunk_and_mka_once_processed => "sine_opus.mka", MKV, MKA;
    mp4_ingests_as_video_mp4 => "clip.mp4", MP4;
    mp4_with_moov_at_the_end_ingests_as_video_mp4 => "clip_moov_last.mp4", MP4;
    mov_ingests_as_video_quicktime => "clip.mov", MOV;
    mkv_ingests_as_video_x_matroska => "clip.mkv", MKV;
    webm_ingests_as_video_webm => "clip.webm", WEBM;
}

#[tokio::test]
async fn unsupported_files_are_refused_at_the_first_chunk_with_409_unsupported_media_type() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    // AVI (RIFF but not WAVE) and FLAC in Ogg (Ogg but neither Vorbis nor Opus).
    for file in ["clip.avi", "sine_flac_in.ogg"] {
        assert_eq!(
            expected(file).2.as_deref(),
            Some("unsupported"),
            "{file} row"
        );
        let bytes = corpus(file);
        let (asset, url) = app.asset(&t, &project, bytes.len()).await;
        let id = asset["id"].as_str().unwrap();
        let r = app.patch(&t, &url, 0, bytes[..FIRST_CHUNK].to_vec()).await;
        assert_eq!(
            error_code(r).await,
            (StatusCode::CONFLICT, "unsupported_media_type".into()),
            "{file}"
        );
        assert_eq!(
            error_code(app.get_asset_raw(&t, id).await).await,
            (StatusCode::NOT_FOUND, "not_found".into()),
            "{file}: the asset is gone"
        );
    }
    assert_eq!(app.balance(&t).await, 10, "nothing charged");
}

/// Asserts `asset` ended `failed` with `code`, uncharged.
async fn assert_failed_uncharged(app: &TestApp, t: &Tenant, asset: &Value, code: &str) {
    let id = asset["id"].as_str().unwrap();
    assert_eq!(asset["state"], "failed", "{asset}");
    assert_eq!(asset["error_code"], code, "{asset}");
    let message = asset["error_message"].as_str().unwrap_or_default();
    assert!(!message.trim().is_empty(), "error_message: {asset}");
    assert!(asset["duration_seconds"].is_null(), "{asset}");
    assert!(asset["download_url"].is_null(), "{asset}");
    assert_eq!(charges_for(app, t, id).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_truncated_wav_ends_failed_media_truncated_and_is_not_charged() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let file = "truncated_30.wav";
    let (first, settled) = upload(&app, &t, &project, &corpus(file)).await;
    assert_format(&first, WAV, "after the first 64 bytes");
    assert_failed_uncharged(&app, &t, &settled, "media_truncated").await;
    assert_eq!(app.balance(&t).await, 10, "nothing charged");
}

#[tokio::test]
async fn every_broken_corpus_file_ends_failed_with_its_code_and_is_not_charged() {
    let app = TestApp::spawn().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let table = std::fs::read_to_string(corpus_dir().join("expected.tsv")).unwrap();
    // The broken files that pass sniffing (the others are refused at the first chunk).
    let broken: Vec<(String, String)> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let (file, format, failure) = (cols[0], cols[1], cols[3]);
            (format != "-" && (failure.starts_with("media_") || failure == "format_mismatch"))
                .then(|| (file.to_owned(), failure.to_owned()))
        })
        .collect();
    assert!(broken.len() >= 8, "{broken:?}");
    for (file, code) in &broken {
        let (_, settled) = upload(&app, &t, &project, &corpus(file)).await;
        assert_eq!(settled["error_code"], code.as_str(), "{file}: {settled}");
        assert_failed_uncharged(&app, &t, &settled, code).await;
    }
    assert_eq!(app.balance(&t).await, 10, "nothing charged");
    // All of them are listed as failed.
    let r = app
        .req(Method::GET, "/v1/assets?state=failed&limit=100", &t.key)
        .send()
        .await
        .unwrap();
    let listed: Value = r.json().await.unwrap();
    assert_eq!(
        listed["data"].as_array().map(Vec::len),
        Some(broken.len()),
        "{listed}"
    );
}

/// Every garbled-middle file of the corpus (one per supported format): those whose damage the
/// probe can see end `failed` with `media_corrupt`, uncharged; garbled PCM (any bytes are
/// valid samples) is `ready` at its exact duration and charged as usual.
#[tokio::test]
async fn garbled_media_ends_failed_media_corrupt_and_is_not_charged() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let table = std::fs::read_to_string(corpus_dir().join("expected.tsv")).unwrap();
    let garbled: Vec<&str> = table
        .lines()
        .filter_map(|line| line.split('\t').next())
        .filter(|file| file.starts_with("garbled_middle."))
        .collect();
    assert!(garbled.len() >= 13, "one per supported format: {garbled:?}");
    let mut failed = 0;
    for file in &garbled {
        let before = app.balance(&t).await;
        let (_, settled) = upload(&app, &t, &project, &corpus(file)).await;
        match expected(file) {
            (Some(_), None, Some(code)) => {
                assert_eq!(code, "media_corrupt", "{file} row");
                assert_failed_uncharged(&app, &t, &settled, "media_corrupt").await;
                assert_eq!(app.balance(&t).await, before, "{file}: nothing charged");
                failed += 1;
            }
            (Some(_), Some(ms), None) => {
                assert_eq!(settled["state"], "ready", "{file}: {settled}");
                assert!(
                    duration_ms(&settled).abs_diff(ms) <= TOLERANCE_MS,
                    "{settled}"
                );
                assert_eq!(before - app.balance(&t).await, 1, "{file}: 1 credit");
            }
            row => panic!("{file}: unexpected row {row:?}"),
        }
    }
    assert!(failed >= 11, "{failed} garbled files failed");
}
