//! The parsing functions themselves: TUS headers, `Authorization`, `Range`, list cursors and
//! limits, JSON bodies.

use actix_web::http::header::HeaderValue;
use actix_web::test::TestRequest;
use actix_web::{mime, HttpRequest, ResponseError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use roughy_app::{Cursor, PageRequest};
use roughy_domain::tus::parse_offset;

use super::{contract_status, header_near, header_text, media_type, near, near_bytes, text};
use crate::dto::{CreateAccountBody, CreateAssetBody, CreateProjectBody, TopUpBody};
use crate::error::ApiError;
use crate::extract::ListQuery;
use crate::extract::{bearer, decode_cursor, encode_cursor, json_content_type_ok, parse_json};
use crate::routes::downloads::parse_range;
use crate::routes::uploads::{
    method_override, require_offset_octet_stream, require_tus, upload_offset,
};

/// A request carrying `name: value` when there is a value.
fn with_header(name: &str, value: Option<HeaderValue>) -> HttpRequest {
    let mut req = TestRequest::default();
    if let Some(v) = value {
        req = req.insert_header((name, v));
    }
    req.to_http_request()
}

/// The refusal is the contract's: its code is one of the contract's, with the contract's status,
/// and it is one of `allowed`.
fn assert_contract(e: &ApiError, allowed: &[&str]) -> Result<(), TestCaseError> {
    let status = e.status_code().as_u16();
    prop_assert_eq!(contract_status(e.code()), Some(status), "{}", e);
    prop_assert!(allowed.contains(&e.code()), "{} not in {:?}", e, allowed);
    Ok(())
}

/// What `Upload-Offset` means: a non-empty run of decimal digits whose value fits 64 bits.
fn offset_meaning(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// `s` with its ASCII letters upper- or lowercased as `mask` says, bit by bit.
fn recase(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Optional whitespace around a value.
fn padding() -> impl Strategy<Value = (&'static str, &'static str)> {
    let ws = prop::sample::select(vec!["", " ", "\t", "  "]);
    (ws.clone(), ws)
}

proptest! {
    // --- Upload-Offset ---------------------------------------------------------------------

    #[test]
    fn upload_offset_parses_exactly_the_non_negative_integers(
        raw in prop_oneof![text(), any::<u64>().prop_flat_map(|n| near(n.to_string()))],
    ) {
        prop_assert_eq!(parse_offset(&raw), offset_meaning(&raw), "{:?}", raw);
    }

    #[test]
    fn upload_offset_round_trips(n in any::<u64>(), zeros in 0usize..30) {
        prop_assert_eq!(parse_offset(&n.to_string()), Some(n));
        let padded = format!("{}{n}", "0".repeat(zeros));
        prop_assert_eq!(parse_offset(&padded), Some(n), "{}", padded);
    }

    #[test]
    fn upload_offset_header_refusal_is_400_invalid_upload_offset(
        value in header_near("1048576"),
    ) {
        let meaning = header_text(value.as_ref()).and_then(offset_meaning);
        match upload_offset(&with_header("Upload-Offset", value.clone())) {
            Ok(n) => prop_assert_eq!(Some(n), meaning),
            Err(e) => {
                prop_assert_eq!(meaning, None);
                assert_contract(&e, &["invalid_upload_offset"])?;
            }
        }
    }

    // --- Tus-Resumable, PATCH Content-Type, X-HTTP-Method-Override --------------------------

    #[test]
    fn tus_resumable_is_1_0_0_or_412(value in header_near("1.0.0"), (l, r) in padding()) {
        let value = value.map(|v| {
            let mut b = l.as_bytes().to_vec();
            b.extend_from_slice(v.as_bytes());
            b.extend_from_slice(r.as_bytes());
            HeaderValue::from_bytes(&b).expect("padding is allowed")
        });
        let speaks = header_text(value.as_ref())
            .map(|v| v.trim_matches(|c| c == ' ' || c == '\t'))
            == Some("1.0.0");
        match require_tus(&with_header("Tus-Resumable", value)) {
            Ok(()) => prop_assert!(speaks),
            Err(e) => {
                prop_assert!(!speaks);
                assert_contract(&e, &["unsupported_tus_version"])?;
                let response = e.error_response();
                prop_assert_eq!(
                    response.headers().get("Tus-Version").map(HeaderValue::as_bytes),
                    Some(&b"1.0.0"[..])
                );
            }
        }
    }

    #[test]
    fn patch_content_type_is_offset_octet_stream_in_any_case_or_415(
        value in header_near("application/offset+octet-stream; charset=binary"),
        mask in any::<u64>(),
    ) {
        // The valid value in any letter case, with or without parameters, is accepted (a value
        // arrives without surrounding whitespace: HTTP/1 parsing strips it).
        let valid = recase("application/offset+octet-stream", mask);
        for v in [valid.clone(), format!("{valid};q=1"), format!("{valid}; Q=1; charset=binary")] {
            let req = with_header("Content-Type", Some(HeaderValue::from_str(&v).expect("ascii")));
            prop_assert!(require_offset_octet_stream(&req).is_ok(), "{:?}", v);
        }
        let means = media_type(value.as_ref())
            .is_some_and(|m| m.essence_str() == "application/offset+octet-stream");
        match require_offset_octet_stream(&with_header("Content-Type", value)) {
            Ok(()) => prop_assert!(means),
            Err(e) => {
                prop_assert!(!means);
                assert_contract(&e, &["unsupported_content_type"])?;
            }
        }
    }

    #[test]
    fn method_override_names_patch_delete_or_head(
        value in prop_oneof![header_near("PATCH"), header_near("delete"), header_near(" Head ")],
    ) {
        let named = header_text(value.as_ref()).map(|v| v.trim().to_ascii_uppercase());
        let expected = match named.as_deref() {
            Some(m @ ("PATCH" | "DELETE" | "HEAD")) => Some(m.to_owned()),
            _ => None,
        };
        let got = method_override(&with_header("X-HTTP-Method-Override", value));
        prop_assert_eq!(got.map(|m| m.to_string()), expected);
    }

    // --- JSON Content-Type, Authorization ---------------------------------------------------

    #[test]
    fn json_content_type_is_matched_without_regard_to_case(
        value in prop_oneof![
            header_near("application/json; charset=utf-8"),
            header_near("application/merge-patch+json"),
        ],
        mask in any::<u64>(),
    ) {
        for valid in ["application/json", "application/json; charset=utf-8", "application/ld+json"] {
            let v = recase(valid, mask);
            let req = with_header("Content-Type", Some(HeaderValue::from_str(&v).expect("ascii")));
            prop_assert!(json_content_type_ok(&req), "{:?} refused", v);
        }
        let means = value.is_none()
            || media_type(value.as_ref()).is_some_and(|m| {
                m.type_() == "application" && (m.subtype() == "json" || m.suffix() == Some(mime::JSON))
            });
        prop_assert_eq!(json_content_type_ok(&with_header("Content-Type", value)), means);
    }

    #[test]
    fn bearer_takes_the_token_after_a_case_insensitive_scheme(
        value in header_near("Bearer sk_0123456789abcdefABCDEF"),
        mask in any::<u64>(),
        token in "[A-Za-z0-9_]{1,60}",
    ) {
        let valid = format!("{} {token}", recase("bearer", mask));
        let req = with_header("Authorization", Some(HeaderValue::from_str(&valid).expect("ascii")));
        prop_assert_eq!(bearer(&req), Some(token.as_str()));
        let expected = header_text(value.as_ref()).and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
        });
        let req = with_header("Authorization", value);
        prop_assert_eq!(bearer(&req).map(str::to_owned), expected);
    }

    // --- Range ------------------------------------------------------------------------------

    #[test]
    fn any_range_is_refused_or_inside_the_object(
        raw in prop_oneof![
            text(),
            near("bytes=0-1023"),
            near("bytes=-500"),
            near("bytes=100-"),
            (any::<u64>(), any::<u64>()).prop_map(|(a, b)| format!("bytes={a}-{b}")),
        ],
        size in prop_oneof![0u64..3, 0u64..10_000, Just(u64::MAX)],
    ) {
        if let Some(r) = parse_range(&raw, size) {
            prop_assert!(r.start < r.end && r.end <= size, "{:?} of {} gave {:?}", raw, size, r);
        }
    }

    #[test]
    fn a_single_byte_range_means_what_rfc_9110_says(
        size in 0u64..100_000,
        a in 0u64..120_000,
        b in 0u64..120_000,
        form in 0u8..3,
    ) {
        let (raw, expected) = match form {
            0 => (
                format!("bytes={a}-{b}"),
                (a <= b && a < size).then(|| a..b.min(size - 1) + 1),
            ),
            1 => (format!("bytes={a}-"), (a < size).then_some(a..size)),
            _ => (
                format!("bytes=-{b}"),
                (b > 0 && size > 0).then(|| size - b.min(size)..size),
            ),
        };
        prop_assert_eq!(parse_range(&raw, size), expected.clone(), "{}", raw);
        // More than one range is refused, as the service serves one part only.
        let multi = format!("{raw},0-0");
        prop_assert_eq!(parse_range(&multi, size), None, "{}", multi);
    }

    // --- List cursors and limits ------------------------------------------------------------

    #[test]
    fn cursors_round_trip(secs in 0i64..4_102_444_800, nanos in 0i64..1_000_000_000, id in "[A-Za-z0-9_]{1,80}") {
        let created_at = OffsetDateTime::from_unix_timestamp(secs).expect("in range")
            + time::Duration::nanoseconds(nanos);
        let cursor = Cursor { created_at, id };
        let encoded = encode_cursor(&cursor);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(decode_cursor(&encoded), Some(cursor));
    }

    #[test]
    fn a_malformed_cursor_or_limit_is_422_naming_it(
        cursor in prop_oneof![
            Just(None),
            text().prop_map(Some),
            near(encode_cursor(&Cursor {
                created_at: OffsetDateTime::UNIX_EPOCH + time::Duration::microseconds(1_764_000_000_123_456),
                id: "ast_0123456789abcdefghij".into(),
            })).prop_map(Some),
            // Well-formed base64 of nonsense.
            text().prop_map(|t| Some(URL_SAFE_NO_PAD.encode(t))),
            (any::<i128>(), "[ -~]{0,90}").prop_map(|(n, id)| Some(URL_SAFE_NO_PAD.encode(format!("{n}:{id}")))),
        ],
        limit in prop_oneof![
            Just(None),
            text().prop_map(Some),
            (-5i64..200).prop_map(|n| Some(n.to_string())),
            near("50").prop_map(Some),
        ],
    ) {
        let query = ListQuery { limit: limit.clone(), cursor: cursor.clone(), ..ListQuery::default() };
        let limit_ok = match &limit {
            None => Some(PageRequest::DEFAULT_LIMIT),
            Some(raw) => {
                let digits = raw.strip_prefix('+').unwrap_or(raw);
                (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| digits.parse::<usize>().ok())
                    .flatten()
                    .filter(|n| (1..=PageRequest::MAX_LIMIT).contains(n))
            }
        };
        let decoded = cursor.as_deref().map(decode_cursor);
        if let Some(Some(c)) = &decoded {
            prop_assert!(!c.id.is_empty() && c.id.len() <= 80);
            prop_assert!(c.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        }
        match query.page() {
            Ok(page) => {
                prop_assert_eq!(Some(page.limit), limit_ok);
                prop_assert_eq!(page.cursor, decoded.flatten());
            }
            Err(e) => {
                assert_contract(&e, &["validation_error"])?;
                let message = e.to_string();
                if limit_ok.is_none() {
                    prop_assert!(message.contains("limit"), "{}", message);
                } else {
                    prop_assert!(matches!(decoded, Some(None)));
                    prop_assert!(message.contains("cursor"), "{}", message);
                }
            }
        }
    }
}

// --- JSON bodies -------------------------------------------------------------------------------

/// A field of a request body, as the body's type reads it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    /// A string, required.
    Text,
    /// A string or null, may be absent.
    OptionalText,
    /// An integer that fits `u64`, required.
    Unsigned,
    /// An integer that fits `i64`, required.
    Signed,
}

/// The fields of each body (each denies any other field).
const PROJECT: &[(&str, Kind)] = &[("name", Kind::OptionalText)];
const ASSET: &[(&str, Kind)] = &[
    ("project_id", Kind::Text),
    ("size_bytes", Kind::Unsigned),
    ("language", Kind::OptionalText),
];
const TOP_UP: &[(&str, Kind)] = &[("credits", Kind::Signed)];

/// Whether a well-formed JSON value is a body of these fields.
fn fits(value: &Value, fields: &[(&str, Kind)]) -> bool {
    let Value::Object(object) = value else {
        return false;
    };
    object.keys().all(|k| fields.iter().any(|(f, _)| f == k))
        && fields.iter().all(|(name, kind)| {
            let v = object.get(*name);
            match kind {
                Kind::Text => v.is_some_and(Value::is_string),
                Kind::OptionalText => v.is_none_or(|v| v.is_string() || v.is_null()),
                // JSON Schema's integers: 1574.0 is one; floats count exactly up to 2^53.
                Kind::Unsigned => v.is_some_and(|v| {
                    v.as_u64().is_some() || whole_float(v).is_some_and(|f| f >= 0.0)
                }),
                Kind::Signed => v.is_some_and(|v| v.as_i64().is_some() || whole_float(v).is_some()),
            }
        })
}

/// A float that is a whole number of at most 2^53 in magnitude.
fn whole_float(v: &Value) -> Option<f64> {
    v.as_f64()
        .filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..100_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-100_000i32..100_000).prop_map(|n| Value::from(f64::from(n))),
        "[a-zA-Z]{2}".prop_map(Value::from),
        "prj_[A-Za-z0-9]{1,30}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object over `fields` plus sometimes a stranger, each field sometimes left out.
fn json_object(fields: &'static [(&'static str, Kind)]) -> impl Strategy<Value = Value> {
    let picks = prop::collection::vec((any::<bool>(), json_value()), fields.len());
    (picks, prop::option::of(("[a-z_]{1,12}", json_value()))).prop_map(move |(picks, extra)| {
        let mut object = Map::new();
        for ((name, _), (keep, value)) in fields.iter().zip(picks) {
            if keep {
                object.insert((*name).to_owned(), value);
            }
        }
        if let Some((k, v)) = extra {
            object.insert(k, v);
        }
        Value::Object(object)
    })
}

/// A body to send: any bytes, a generated JSON value (object or not), or one of those edited.
pub(super) fn json_body(fields: &'static [(&'static str, Kind)]) -> impl Strategy<Value = Vec<u8>> {
    let document = prop_oneof![
        3 => json_object(fields),
        1 => json_value(),
    ]
    .prop_map(|v| serde_json::to_vec(&v).expect("a Value serialises"));
    prop_oneof![
        2 => document.clone(),
        3 => document.prop_flat_map(near_bytes),
        1 => any::<Vec<u8>>(),
        1 => prop::collection::vec(super::interesting_byte(), 0..60),
    ]
}

/// The fields of each body, for the HTTP properties.
pub(super) const BODIES: [&[(&str, Kind)]; 3] = [PROJECT, ASSET, TOP_UP];

/// What a body's bytes should get: `Err(400)` for malformed JSON, `Err(422)` for well-formed
/// JSON that is not a body of these fields, `Ok` for a body.
pub(super) fn json_verdict(bytes: &[u8], fields: &[(&str, Kind)]) -> Result<(), u16> {
    match serde_json::from_slice::<Value>(bytes) {
        Err(_) => Err(400),
        Ok(value) if fits(&value, fields) => Ok(()),
        Ok(_) => Err(422),
    }
}

/// `parse_json::<T>` agrees with the verdict: malformed JSON is always 400, never a field error.
fn check_json<T: DeserializeOwned>(
    bytes: &[u8],
    fields: &[(&str, Kind)],
) -> Result<Option<T>, TestCaseError> {
    let verdict = json_verdict(bytes, fields);
    match parse_json::<T>(bytes) {
        Ok(body) => {
            prop_assert_eq!(
                verdict,
                Ok(()),
                "accepted {:?}",
                String::from_utf8_lossy(bytes)
            );
            Ok(Some(body))
        }
        Err(e) => {
            assert_contract(&e, &["invalid_json", "validation_error"])?;
            prop_assert_eq!(
                Err(e.status_code().as_u16()),
                verdict,
                "{:?}: {}",
                String::from_utf8_lossy(bytes),
                e
            );
            Ok(None)
        }
    }
}

proptest! {
    #[test]
    fn project_and_account_bodies_judge_syntax_before_fields(bytes in json_body(PROJECT)) {
        if let Some(body) = check_json::<CreateProjectBody>(&bytes, PROJECT)? {
            if let Err(e) = body.try_into_domain() {
                assert_contract(&ApiError::from(e), &["validation_error"])?;
            }
        }
        check_json::<CreateAccountBody>(&bytes, PROJECT)?;
    }

    #[test]
    fn asset_bodies_judge_syntax_before_fields(bytes in json_body(ASSET)) {
        if let Some(body) = check_json::<CreateAssetBody>(&bytes, ASSET)? {
            if let Err(e) = body.try_into_domain() {
                assert_contract(
                    &ApiError::from(e),
                    &["validation_error", "project_not_found", "upload_too_small", "upload_too_large"],
                )?;
            }
        }
    }

    #[test]
    fn top_up_bodies_judge_syntax_before_fields(bytes in json_body(TOP_UP)) {
        check_json::<TopUpBody>(&bytes, TOP_UP)?;
    }

    #[test]
    fn a_valid_asset_body_means_what_it_says(
        project in "prj_[A-Za-z0-9]{1,64}",
        size in prop_oneof![any::<u64>(), 0u64..200, 53_687_091_100u64..53_687_091_300],
        language in prop::option::of("[a-zA-Z]{2}"),
        spaced in any::<bool>(),
    ) {
        let value = serde_json::json!({"project_id": project, "size_bytes": size, "language": language});
        let bytes = if spaced {
            serde_json::to_vec_pretty(&value)
        } else {
            serde_json::to_vec(&value)
        }
        .expect("serialises");
        let body: CreateAssetBody = parse_json(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        match body.try_into_domain() {
            Ok(command) => {
                prop_assert_eq!(command.project_id.as_str(), project.as_str());
                prop_assert_eq!(command.size.get(), size);
                prop_assert_eq!(
                    command.language.map(|l| l.as_str().to_owned()),
                    language.map(|l| l.to_ascii_lowercase())
                );
            }
            Err(e) => {
                let e = ApiError::from(e);
                let expected = if size < 64 { "upload_too_small" } else { "upload_too_large" };
                prop_assert!(!(64..=53_687_091_200).contains(&size));
                prop_assert_eq!(e.code(), expected);
                assert_contract(&e, &[expected])?;
            }
        }
    }
}
