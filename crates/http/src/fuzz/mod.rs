//! Property-based fuzzing of every parser of request data (issue #9, item 11).
//!
//! Each parser is fed arbitrary input, near-valid input (a valid value with a few random
//! edits) and valid values; the properties are that it never panics, that a valid value
//! parses to what it means, and that every refusal is the contract's error (status and code).
//! [`parsers`] calls the parsing functions directly; [`app`] sends requests through the real
//! app wiring (`crate::configure`, the CORS and charset layers) on the in-memory repository, so
//! the extractors and the error mapping are part of what is fuzzed.
//!
//! `make test` runs proptest's default case count (256 per property); `make fuzz` sets
//! `PROPTEST_CASES` for the long run.

mod app;
mod parsers;

use actix_web::http::header::HeaderValue;
use proptest::prelude::*;
use proptest::sample::Index;

/// Every error code the contract names, with its status.
const CONTRACT_ERRORS: &[(&str, u16)] = &[
    ("invalid_json", 400),
    ("invalid_upload_offset", 400),
    ("first_chunk_too_small", 400),
    ("unauthorized", 401),
    ("insufficient_credits", 402),
    ("invalid_signature", 403),
    ("not_found", 404),
    ("project_not_found", 404),
    ("method_not_allowed", 405),
    ("offset_mismatch", 409),
    ("unsupported_media_type", 409),
    ("upload_complete", 409),
    ("conflict", 409),
    ("upload_gone", 410),
    ("unsupported_tus_version", 412),
    ("upload_too_large", 413),
    ("upload_length_exceeded", 413),
    ("unsupported_content_type", 415),
    ("range_not_satisfiable", 416),
    ("validation_error", 422),
    ("upload_too_small", 422),
    ("upload_locked", 423),
    ("too_many_pending_uploads", 429),
    ("too_many_webhooks", 409),
    ("insufficient_storage", 507),
];

/// The status the contract gives `code`, if it is one of its codes.
fn contract_status(code: &str) -> Option<u16> {
    CONTRACT_ERRORS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, s)| *s)
}

/// Bytes that punctuate the formats under test, so edits hit structure more often than chance.
const INTERESTING: &[u8] = b"{}[],:\"\\ \t0123456789-+.eE_=&;/?%#trufalsn*\xff\xc3\x00\x7f";

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(INTERESTING),
        1 => any::<u8>(),
    ]
}

/// One random edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    Insert(Index, u8),
    Delete(Index),
    Replace(Index, u8),
    Truncate(Index),
    Duplicate(Index, Index),
    FlipCase(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<Index>().prop_map(Edit::Delete),
        (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Edit::Replace(i, b)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Duplicate(a, b)),
        any::<Index>().prop_map(Edit::FlipCase),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
            Edit::Truncate(i) => bytes.truncate(i.index(len + 1)),
            _ if len == 0 => {}
            Edit::Delete(i) => {
                bytes.remove(i.index(len));
            }
            Edit::Replace(i, b) => bytes[i.index(len)] = *b,
            Edit::Duplicate(a, b) => {
                let (a, b) = (a.index(len), b.index(len));
                let piece = bytes[a.min(b)..=a.max(b)].to_vec();
                bytes.splice(a.max(b) + 1..a.max(b) + 1, piece);
            }
            Edit::FlipCase(i) => {
                let i = i.index(len);
                bytes[i] = if bytes[i].is_ascii_lowercase() {
                    bytes[i].to_ascii_uppercase()
                } else {
                    bytes[i].to_ascii_lowercase()
                };
            }
        }
    }
    bytes
}

/// `valid` with one to four random edits (any bytes may result).
fn near_bytes(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(edit(), 1..5).prop_map(move |edits| apply(valid.clone(), &edits))
}

/// `valid` with one to four random edits, as text (invalid UTF-8 replaced).
fn near(valid: impl Into<String>) -> impl Strategy<Value = String> {
    near_bytes(valid.into().into_bytes()).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Arbitrary text, biased towards the formats' punctuation.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(interesting_byte(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// What a header value can carry: any byte but the controls (tab allowed).
fn header_safe(bytes: Vec<u8>) -> HeaderValue {
    let bytes: Vec<u8> = bytes
        .into_iter()
        .map(|b| {
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                b'?'
            } else {
                b
            }
        })
        .collect();
    HeaderValue::from_bytes(&bytes).expect("no control bytes left")
}

/// A header value: arbitrary bytes, or `valid` edited; `None` is the header left out.
fn header_near(valid: &'static str) -> impl Strategy<Value = Option<HeaderValue>> {
    prop_oneof![
        1 => Just(None),
        2 => Just(Some(HeaderValue::from_static(valid))),
        4 => near_bytes(valid.as_bytes().to_vec()).prop_map(|b| Some(header_safe(b))),
        2 => prop::collection::vec(interesting_byte(), 0..40).prop_map(|b| Some(header_safe(b))),
    ]
}

/// A header value read as text the way the handlers do (`None` when it is not visible ASCII).
fn header_text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

/// A `Content-Type` value read as a media type, as `HttpMessage::mime_type` reads it (`None`
/// when absent or malformed).
fn media_type(value: Option<&HeaderValue>) -> Option<actix_web::mime::Mime> {
    header_text(value).and_then(|v| v.parse().ok())
}
