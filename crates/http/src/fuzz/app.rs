//! Requests through the real app wiring: `crate::configure` with the CORS and charset layers,
//! on the in-memory repository, local-disk blobs in a temp dir and HMAC download links, with a
//! media inspector that takes anything starting `RIFF` for a one-second WAV.

use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderValue};
use actix_web::test::{self, TestRequest};
use actix_web::{web, App};
use async_trait::async_trait;
use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use roughy_app::ports::{BlobReader, MediaInfo, MediaInspector, ProbeError};
use roughy_app::{Ingest, IngestConfig, IngestPorts, NotifyJobSignal, SystemClock};
use roughy_blobstore::{HmacDownloadLinks, LocalBlobStore};
use roughy_domain::{AdminToken, AssetState, DurationMs, MediaFormat, ProjectId};
use roughy_memory::MemoryRepository;

use super::parsers::{json_body, json_verdict, Kind, BODIES};
use super::{
    apply, contract_status, edit, header_near, header_safe, header_text, media_type, near, text,
    Edit,
};
use crate::extract::decode_cursor;
use crate::routes::downloads::parse_range;
use crate::{HttpSettings, HttpState};

const ADMIN_TOKEN: &str = "fuzz-admin-token";
/// The size of the one ready asset, and of the pending upload.
const OBJECT_LEN: usize = 1000;

/// Takes `RIFF…` for WAV and measures everything as one second.
struct StubMedia;

#[async_trait]
impl MediaInspector for StubMedia {
    fn sniff(&self, head: &[u8]) -> Option<MediaFormat> {
        head.starts_with(b"RIFF").then_some(MediaFormat::Wav)
    }

    async fn probe(
        &self,
        _reader: Box<dyn BlobReader>,
        sniffed: MediaFormat,
    ) -> Result<MediaInfo, ProbeError> {
        Ok(MediaInfo {
            duration: DurationMs::from_millis(1000),
            format: sniffed,
        })
    }
}

/// A response, read whole.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A refusal: the contract's envelope, a code of the contract with its status, one of
    /// `allowed`. Returns the message.
    fn refusal(&self, allowed: &[&str]) -> Result<String, TestCaseError> {
        let body = self.json();
        let code = body["error"]["code"].as_str().unwrap_or("<none>");
        prop_assert_eq!(
            contract_status(code),
            Some(self.status),
            "{} {}",
            self.status,
            body
        );
        prop_assert!(
            allowed.contains(&code),
            "{} not in {:?}: {}",
            code,
            allowed,
            body
        );
        let message = body["error"]["message"].as_str().unwrap_or("");
        prop_assert!(!message.is_empty(), "{}", body);
        Ok(message.to_owned())
    }
}

/// What every property can use: a tenant with credits, a project, a ready asset's download link
/// and a pending upload at offset 0.
struct World {
    bearer: String,
    account: String,
    project: String,
    upload: String,
    download: String,
    object: Vec<u8>,
}

/// The path of an absolute URL of this service.
fn path_of(url: &str) -> String {
    url.find("/v1/")
        .map(|i| url[i..].to_owned())
        .expect("a /v1 URL")
}

fn with_headers(mut req: TestRequest, headers: &[(&str, Option<HeaderValue>)]) -> TestRequest {
    for (name, value) in headers {
        if let Some(v) = value {
            req = req.insert_header((*name, v.clone()));
        }
    }
    req
}

impl World {
    /// Sets the world up through the API; `process` runs the queued processing jobs.
    fn build(
        run: &dyn Fn(TestRequest) -> Reply,
        account: String,
        key: &str,
        process: &dyn Fn(),
    ) -> Self {
        let bearer = format!("Bearer {key}");
        let auth = || ("Authorization", bearer.clone());
        let created = run(TestRequest::post()
            .uri("/v1/projects")
            .insert_header(auth())
            .set_json(json!({})));
        assert_eq!(created.status, 201, "project");
        let project = created.json()["id"].as_str().expect("id").to_owned();
        let asset = |what: &str| {
            let r = run(TestRequest::post()
                .uri("/v1/assets")
                .insert_header(auth())
                .set_json(json!({"project_id": project, "size_bytes": OBJECT_LEN})));
            assert_eq!(r.status, 201, "{what}");
            let body = r.json();
            (
                body["id"].as_str().expect("id").to_owned(),
                path_of(body["upload_url"].as_str().expect("upload_url")),
            )
        };
        let object: Vec<u8> = b"RIFF"
            .iter()
            .copied()
            .chain((4..OBJECT_LEN).map(|i| (i * 31 + 7) as u8))
            .collect();
        let (ready, ready_upload) = asset("ready asset");
        let patched = run(TestRequest::patch()
            .uri(&ready_upload)
            .insert_header(auth())
            .insert_header(("Tus-Resumable", "1.0.0"))
            .insert_header(("Content-Type", "application/offset+octet-stream"))
            .insert_header(("Upload-Offset", "0"))
            .set_payload(object.clone()));
        assert_eq!(patched.status, 204, "upload: {:?}", patched.body);
        process();
        let detail = run(TestRequest::get()
            .uri(&format!("/v1/assets/{ready}"))
            .insert_header(auth()))
        .json();
        assert_eq!(detail["state"], "ready", "{detail}");
        let download = path_of(detail["download_url"].as_str().expect("download_url"));
        let (_, upload) = asset("pending asset");
        Self {
            bearer,
            account,
            project,
            upload,
            download,
            object,
        }
    }
}

/// Runs `property` for each case of `strategy` (proptest's case count, `PROPTEST_CASES`) against
/// one app and one [`World`].
fn check_http<S: Strategy>(
    strategy: S,
    property: impl Fn(&World, &dyn Fn(TestRequest) -> Reply, S::Value) -> Result<(), TestCaseError>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = actix_web::rt::System::new();
    let repo = MemoryRepository::new();
    let blobs = Arc::new(LocalBlobStore::new(dir.path()).expect("blob root"));
    let ingest = Ingest::new(
        IngestPorts {
            accounts: Arc::new(repo.clone()),
            projects: Arc::new(repo.clone()),
            assets: Arc::new(repo.clone()),
            uploads: Arc::new(repo.clone()),
            jobs: Arc::new(repo.clone()),
            locks: Arc::new(repo.locks()),
            idempotency: Arc::new(repo.clone()),
            webhooks: Arc::new(repo.clone()),
            webhook_transport: Arc::new(
                roughy_webhooks::HttpWebhookTransport::new(&Default::default())
                    .expect("an HTTP client"),
            ),
            event_encoder: Arc::new(crate::JsonEvents),
            purges: Arc::new(repo),
            sink: blobs.clone(),
            blobs,
            media: Arc::new(StubMedia),
            links: Arc::new(HmacDownloadLinks::new(vec![7; 32]).expect("a key")),
            job_signal: Arc::new(NotifyJobSignal::new()),
            clock: Arc::new(SystemClock),
            metrics: Arc::new(roughy_app::ports::NoMetrics),
        },
        IngestConfig {
            // One account creates an asset per accepted case, far past any pending-upload
            // limit: the limit has its own tests, the fuzz is about the parsers.
            max_pending_uploads: u32::MAX,
            ..IngestConfig::default()
        },
    );
    let settings = HttpSettings {
        admin_token: AdminToken::new(ADMIN_TOKEN.to_owned()),
        ..HttpSettings::default()
    };
    let state = HttpState {
        ingest: ingest.clone(),
        settings: settings.clone(),
        readiness: Vec::new(),
    };
    let app = rt.block_on(test::init_service(
        App::new()
            .wrap(actix_web::middleware::from_fn(crate::json_utf8))
            .wrap(crate::cors(&settings))
            .configure(crate::configure(state))
            .default_service(web::to(crate::not_found)),
    ));
    let run = |req: TestRequest| -> Reply {
        rt.block_on(async {
            let res = test::call_service(&app, req.to_request()).await;
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let body = test::read_body(res).await;
            Reply {
                status,
                headers,
                body,
            }
        })
    };
    let (account, key) = rt.block_on(async {
        let account = ingest.create_account(None).await.expect("account");
        let minted = ingest.mint_api_key(&account.id).await.expect("key");
        ingest
            .top_up(&account.id, 1_000_000_000)
            .await
            .expect("top-up");
        (account.id.to_string(), minted.secret.expose().to_owned())
    });
    let process = || {
        rt.block_on(ingest.drain_jobs()).expect("processing");
    };
    let world = World::build(&run, account, &key, &process);
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, |value| property(&world, &run, value)) {
        panic!("{e}");
    }
}

/// The valid text `valid`, edited at run time by `edits` (for values only the world knows).
fn edited(valid: &str, edits: &[Edit]) -> Vec<u8> {
    apply(valid.as_bytes().to_vec(), edits)
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 0..4)
}

// --- JSON bodies ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum BodyCase {
    /// Generated bytes for endpoint `0`.
    Bytes(usize, Vec<u8>),
    /// A valid asset body for the world's project, edited.
    Asset(u64, Option<String>, Vec<Edit>),
}

#[test]
fn json_bodies_through_the_app() {
    let case = prop_oneof![
        json_body(BODIES[0]).prop_map(|b| BodyCase::Bytes(0, b)),
        json_body(BODIES[1]).prop_map(|b| BodyCase::Bytes(1, b)),
        json_body(BODIES[0]).prop_map(|b| BodyCase::Bytes(2, b)),
        json_body(BODIES[2]).prop_map(|b| BodyCase::Bytes(3, b)),
        (
            prop_oneof![0u64..200, 64u64..100_000, any::<u64>()],
            prop::option::of("[a-zA-Z]{1,3}"),
            edits()
        )
            .prop_map(|(s, l, e)| BodyCase::Asset(s, l, e)),
    ];
    let content_type = prop::sample::select(vec![
        None,
        Some("application/json"),
        Some("Application/JSON; charset=utf-8"),
        Some("text/plain"),
    ]);
    check_http((case, content_type), |world, run, (case, content_type)| {
        let (endpoint, bytes) = match case {
            BodyCase::Bytes(endpoint, bytes) => (endpoint, bytes),
            BodyCase::Asset(size, language, edits) => {
                let valid =
                    json!({"project_id": world.project, "size_bytes": size, "language": language});
                (1, edited(&valid.to_string(), &edits))
            }
        };
        let admin = format!("Bearer {ADMIN_TOKEN}");
        let (path, auth, fields, domain_codes): (String, &str, &[(&str, Kind)], &[&str]) =
            match endpoint {
                0 => (
                    "/v1/projects".into(),
                    &world.bearer,
                    BODIES[0],
                    &["validation_error"],
                ),
                1 => (
                    "/v1/assets".into(),
                    &world.bearer,
                    BODIES[1],
                    &[
                        "validation_error",
                        "project_not_found",
                        "upload_too_small",
                        "upload_too_large",
                    ],
                ),
                2 => ("/admin/v1/accounts".into(), &admin, BODIES[0], &[]),
                _ => (
                    format!("/admin/v1/accounts/{}/top-ups", world.account),
                    &admin,
                    BODIES[2],
                    &["validation_error"],
                ),
            };
        let mut req = TestRequest::post()
            .uri(&path)
            .insert_header(("Authorization", auth.to_owned()))
            .set_payload(bytes.clone());
        if let Some(ct) = content_type {
            req = req.insert_header(("Content-Type", ct));
        }
        let reply = run(req);
        let what = String::from_utf8_lossy(&bytes).into_owned();
        if content_type == Some("text/plain") {
            prop_assert_eq!(reply.status, 415, "{}", what);
            reply.refusal(&["unsupported_content_type"])?;
            return Ok(());
        }
        // No body is `{}`; so is `null` where the body is optional (creating a project).
        let effective: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace)
            || (endpoint == 0 && bytes.trim_ascii() == b"null")
        {
            b"{}"
        } else {
            &bytes
        };
        match json_verdict(effective, fields) {
            Err(400) => {
                prop_assert_eq!(reply.status, 400, "{}", what);
                reply.refusal(&["invalid_json"])?;
            }
            Err(_) => {
                prop_assert_eq!(reply.status, 422, "{}", what);
                reply.refusal(&["validation_error"])?;
            }
            Ok(()) if reply.status == 201 => {}
            Ok(()) => {
                reply.refusal(domain_codes)?;
            }
        }
        Ok(())
    });
}

// --- TUS headers -----------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum TusMethod {
    Patch,
    Head,
    /// `POST` with this `X-HTTP-Method-Override`, to an upload never issued.
    Post(Option<HeaderValue>),
}

#[test]
fn tus_headers_through_the_app() {
    let method = prop_oneof![
        2 => Just(TusMethod::Patch),
        1 => Just(TusMethod::Head),
        2 => prop_oneof![header_near("PATCH"), header_near("DELETE"), header_near("head")].prop_map(TusMethod::Post),
    ];
    let headers = (
        header_near("1.0.0"),
        header_near("application/offset+octet-stream"),
        prop_oneof![header_near("0"), header_near("64")],
        header_near("1000"),
        header_near("filename d29ybGQuanBn,is_confidential"),
    );
    check_http(
        (method, headers, 0usize..64),
        |world, run, (method, (tus, ct, offset, length, metadata), body_len)| {
            let speaks_tus = header_text(tus.as_ref()).map(str::trim) == Some("1.0.0");
            let octets = media_type(ct.as_ref())
                .is_some_and(|m| m.essence_str() == "application/offset+octet-stream");
            let offset_value = header_text(offset.as_ref())
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            let never_issued = "/v1/uploads/upl_neverissued0123456789";
            let (req, expected): (TestRequest, (u16, &str)) = match &method {
                TusMethod::Patch => (
                    TestRequest::patch().uri(&world.upload),
                    if !speaks_tus {
                        (412, "unsupported_tus_version")
                    } else if !octets {
                        (415, "unsupported_content_type")
                    } else {
                        match offset_value {
                            None => (400, "invalid_upload_offset"),
                            Some(0) => (400, "first_chunk_too_small"),
                            Some(_) => (409, "offset_mismatch"),
                        }
                    },
                ),
                TusMethod::Head => (
                    TestRequest::default()
                        .method(actix_web::http::Method::HEAD)
                        .uri(&world.upload),
                    if speaks_tus {
                        (200, "")
                    } else {
                        (412, "unsupported_tus_version")
                    },
                ),
                TusMethod::Post(over) => {
                    let named = header_text(over.as_ref()).map(|v| v.trim().to_ascii_uppercase());
                    let expected = match named.as_deref() {
                        Some("PATCH" | "DELETE" | "HEAD") if !speaks_tus => {
                            (412, "unsupported_tus_version")
                        }
                        Some("PATCH") if !octets => (415, "unsupported_content_type"),
                        Some("PATCH") if offset_value.is_none() => (400, "invalid_upload_offset"),
                        Some("PATCH" | "DELETE" | "HEAD") => (404, "not_found"),
                        _ => (405, "method_not_allowed"),
                    };
                    let mut req = TestRequest::post().uri(never_issued);
                    if let Some(v) = over {
                        req = req.insert_header(("X-HTTP-Method-Override", v.clone()));
                    }
                    (req, expected)
                }
            };
            let req = with_headers(
                req.insert_header(("Authorization", world.bearer.clone())),
                &[
                    ("Tus-Resumable", tus.clone()),
                    ("Content-Type", ct.clone()),
                    ("Upload-Offset", offset.clone()),
                    ("Upload-Length", length.clone()),
                    ("Upload-Metadata", metadata.clone()),
                ],
            )
            .set_payload(vec![b'R'; body_len]);
            let reply = run(req);
            prop_assert_eq!(reply.header("Tus-Resumable"), Some("1.0.0"));
            prop_assert_eq!(reply.status, expected.0, "{:?} {:?}", method, reply.body);
            if expected.0 == 200 {
                prop_assert_eq!(reply.header("Upload-Offset"), Some("0"));
                prop_assert_eq!(reply.header("Upload-Length"), Some("1000"));
            } else {
                reply.refusal(&[expected.1])?;
            }
            if expected.1 == "unsupported_tus_version" {
                prop_assert_eq!(reply.header("Tus-Version"), Some("1.0.0"));
            }
            Ok(())
        },
    );
}

/// `query` as a request line may carry it: every byte a URI query may not hold percent-encoded
/// (a `%` stays as it is, so malformed escapes reach the decoder).
fn uri_safe(query: &str) -> String {
    query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// --- List queries ----------------------------------------------------------------------------

/// One `key=value` of a list query: a known key with a near-valid value, or anything.
fn list_pair() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec!["limit", "cursor", "state", "project_id", "x"]);
    let value = prop_oneof![
        near("50"),
        near("MTc2NDAwMDAwMDEyMzQ1NjAwMDphc3RfMDEyMzQ1Njc4OQ"),
        near("pending_upload"),
        near("prj_0123456789abcdef"),
        text(),
        Just(String::new()),
    ];
    prop_oneof![
        4 => (key, value).prop_map(|(k, v)| format!("{k}={v}")),
        1 => text(),
    ]
}

#[test]
fn list_queries_through_the_app() {
    let path = prop::sample::select(vec!["/v1/projects", "/v1/assets", "/v1/credits/ledger"]);
    let query = prop::collection::vec(list_pair(), 0..4).prop_map(|pairs| pairs.join("&"));
    check_http((path, query), |world, run, (path, query)| {
        let query = uri_safe(&query);
        let uri = format!("{path}?{query}");
        // Decoded as the extractor decodes it (a query that does not decode must be a 422).
        let decoded = web::Query::<Vec<(String, String)>>::from_query(&query);
        let pairs = decoded.as_ref().map(|q| q.0.clone()).unwrap_or_default();
        let values = |key: &str| {
            pairs
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        let known = ["limit", "cursor", "state", "project_id"];
        let once = known.iter().all(|k| values(k).len() <= 1);
        let one = |key: &str| values(key).first().copied();
        let limit_ok = one("limit").is_none_or(|raw| {
            let digits = raw.strip_prefix('+').unwrap_or(raw);
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits
                    .parse::<usize>()
                    .is_ok_and(|n| (1..=100).contains(&n))
        });
        let cursor_ok = one("cursor").is_none_or(|c| c.is_empty() || decode_cursor(c).is_some());
        let filters_ok = path != "/v1/assets"
            || (one("state").is_none_or(|s| AssetState::parse(s).is_some())
                && one("project_id").is_none_or(|p| ProjectId::parse(p).is_some()));
        let valid = decoded.is_ok() && once && limit_ok && cursor_ok && filters_ok;
        let reply = run(TestRequest::get()
            .uri(&uri)
            .insert_header(("Authorization", world.bearer.clone())));
        if valid {
            prop_assert_eq!(reply.status, 200, "{} {:?}", uri, reply.body);
            let body = reply.json();
            prop_assert!(body["data"].is_array(), "{}", body);
            prop_assert!(body["next_cursor"].is_null() || body["next_cursor"].is_string());
        } else {
            prop_assert_eq!(reply.status, 422, "{}", uri);
            let message = reply.refusal(&["validation_error"])?;
            prop_assert!(
                decoded.is_err() || known.iter().any(|k| message.contains(k)),
                "{}: {:?} names no parameter",
                uri,
                message
            );
        }
        Ok(())
    });
}

// --- Downloads: query and Range --------------------------------------------------------------

#[derive(Clone, Debug)]
enum QueryEdit {
    /// Edit the bytes of the query.
    Bytes(Vec<Edit>),
    /// Repeat the `n`th parameter (with an edited value).
    Repeat(prop::sample::Index, Vec<Edit>),
    /// Drop the `n`th parameter.
    Drop(prop::sample::Index),
    /// Add `key=value`.
    Add(String),
}

#[test]
fn download_queries_through_the_app() {
    let edit = prop_oneof![
        3 => prop::collection::vec(edit(), 1..4).prop_map(QueryEdit::Bytes),
        1 => (any::<prop::sample::Index>(), edits()).prop_map(|(i, e)| QueryEdit::Repeat(i, e)),
        1 => any::<prop::sample::Index>().prop_map(QueryEdit::Drop),
        1 => list_pair().prop_map(QueryEdit::Add),
    ];
    check_http(prop::collection::vec(edit, 0..3), |world, run, edits| {
        let (path, original) = world.download.split_once('?').expect("a query");
        let mut query = original.to_owned();
        for e in &edits {
            let mut pairs: Vec<String> = query.split('&').map(str::to_owned).collect();
            match e {
                QueryEdit::Bytes(edits) => {
                    query = String::from_utf8_lossy(&edited(&query, edits)).into_owned()
                }
                QueryEdit::Repeat(i, edits) => {
                    let pair = pairs[i.index(pairs.len())].clone();
                    pairs.push(String::from_utf8_lossy(&edited(&pair, edits)).into_owned());
                    query = pairs.join("&");
                }
                QueryEdit::Drop(i) => {
                    pairs.remove(i.index(pairs.len()));
                    query = pairs.join("&");
                }
                QueryEdit::Add(pair) => query = format!("{query}&{pair}"),
            }
        }
        let query = uri_safe(&query);
        let decode =
            |q: &str| web::Query::<Vec<(String, String)>>::from_query(q).map(|q| q.into_inner());
        let mine = decode(original).expect("the service's own link decodes");
        let theirs = decode(&query).unwrap_or_default();
        let value = |pairs: &[(String, String)], key: &str| {
            let found: Vec<&str> = pairs
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect();
            (found.len() == 1).then(|| found[0].to_owned())
        };
        // The link means what it meant when each signed parameter is there once with a value
        // that parses to the same thing.
        let same = value(&theirs, "ext").and_then(|e| MediaFormat::from_extension(&e))
            == value(&mine, "ext").and_then(|e| MediaFormat::from_extension(&e))
            && value(&theirs, "expires").and_then(|e| e.parse::<i64>().ok())
                == value(&mine, "expires").and_then(|e| e.parse::<i64>().ok())
            && value(&theirs, "sig").map(|s| s.to_ascii_lowercase()) == value(&mine, "sig");
        let reply = run(TestRequest::get().uri(&format!("{path}?{query}")));
        if same {
            prop_assert_eq!(reply.status, 200, "{:?}", query);
            prop_assert_eq!(&reply.body[..], &world.object[..]);
            prop_assert_eq!(reply.header("Content-Type"), Some("audio/wav"));
        } else {
            prop_assert_eq!(reply.status, 403, "{:?}: {:?}", query, reply.body);
            reply.refusal(&["invalid_signature"])?;
        }
        Ok(())
    });
}

#[test]
fn download_ranges_through_the_app() {
    let range = prop_oneof![
        header_near("bytes=0-99"),
        header_near("bytes=-10"),
        header_near("bytes=990-"),
        (0u64..1200, 0u64..1200)
            .prop_map(|(a, b)| Some(header_safe(format!("bytes={a}-{b}").into_bytes()))),
    ];
    check_http(range, |world, run, range| {
        let size = world.object.len() as u64;
        let mut req = TestRequest::get().uri(&world.download);
        if let Some(v) = &range {
            req = req.insert_header(("Range", v.clone()));
        }
        let reply = run(req);
        match header_text(range.as_ref()) {
            None => {
                prop_assert_eq!(reply.status, 200);
                prop_assert_eq!(&reply.body[..], &world.object[..]);
            }
            Some(raw) => match parse_range(raw, size) {
                Some(r) => {
                    prop_assert_eq!(reply.status, 206, "{:?}", raw);
                    let content_range = format!("bytes {}-{}/{size}", r.start, r.end - 1);
                    prop_assert_eq!(reply.header("Content-Range"), Some(content_range.as_str()));
                    let (start, end) = (
                        usize::try_from(r.start).expect("small"),
                        usize::try_from(r.end).expect("small"),
                    );
                    prop_assert_eq!(&reply.body[..], &world.object[start..end]);
                }
                None => {
                    prop_assert_eq!(reply.status, 416, "{:?}", raw);
                    let unsatisfied = format!("bytes */{size}");
                    prop_assert_eq!(reply.header("Content-Range"), Some(unsatisfied.as_str()));
                    reply.refusal(&["range_not_satisfiable"])?;
                }
            },
        }
        Ok(())
    });
}

// --- Authorization ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum AuthCase {
    Missing,
    /// The tenant's own `Bearer sk_…`, edited.
    Edited(Vec<Edit>),
    Other(Option<HeaderValue>),
}

#[test]
fn authorization_through_the_app() {
    let value = prop_oneof![
        1 => Just(AuthCase::Missing),
        3 => edits().prop_map(AuthCase::Edited),
        1 => header_near("Bearer sk_0123456789abcdef").prop_map(AuthCase::Other),
    ];
    check_http(value, |world, run, case| {
        let header = match case {
            AuthCase::Missing => None,
            AuthCase::Edited(e) => Some(header_safe(edited(&world.bearer, &e))),
            AuthCase::Other(v) => v,
        };
        let key = world.bearer.trim_start_matches("Bearer ");
        let accepted = header_text(header.as_ref())
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && token.trim() == key
            });
        let mut req = TestRequest::get().uri("/v1/credits");
        if let Some(v) = header {
            req = req.insert_header(("Authorization", v));
        }
        let reply = run(req);
        if accepted {
            prop_assert_eq!(reply.status, 200);
            prop_assert!(reply.json()["balance"].is_i64());
        } else {
            prop_assert_eq!(reply.status, 401);
            reply.refusal(&["unauthorized"])?;
            prop_assert_eq!(reply.header("WWW-Authenticate"), Some("Bearer"));
        }
        Ok(())
    });
}
