//! `Idempotency-Key` on creates: the first response to a keyed request is stored and replayed
//! to its retries (`Idempotent-Replayed: true`); the rules are `roughy_domain::idempotency`'s.

use std::future::Future;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;

use roughy_app::KeyedRequest;
use roughy_domain::idempotency::KeyError;
use roughy_domain::{AccountId, Fingerprint, IdempotencyKey, StoredResponse};

use crate::error::ApiError;
use crate::extract::state;

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header on a replay.
pub const REPLAYED: &str = "idempotent-replayed";

/// The response headers a replay repeats.
const KEPT_HEADERS: [&str; 3] = ["location", "upload-expires", "content-type"];

/// Runs `create` once per `Idempotency-Key`: without the header it just runs; with it, the
/// first successful response to `route` with this body is stored and a retry gets it back.
/// A refused or failed create lets the key go, so that a retry runs again.
///
/// `body` is the request body as received; it is compared in a canonical form (object keys
/// sorted, whitespace dropped), so a retry that serialises the same JSON differently is the
/// same request.
///
/// # Errors
/// 422 `validation_error` for a malformed key; 422 `idempotency_key_reused` when the key was
/// used for another request; 409 `idempotency_key_in_use` while the first request runs; and
/// whatever `create` answers.
pub async fn once_per_key<F, Fut>(
    req: &HttpRequest,
    account: &AccountId,
    route: &str,
    body: &[u8],
    create: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<HttpResponse, ApiError>>,
{
    let Some(key) = key(req)? else {
        return create().await;
    };
    let ingest = &state(req)?.ingest;
    let fingerprint = Fingerprint::of(route, &canonical_body(body));
    let claim = match ingest
        .claim_idempotency_key(account, &key, &fingerprint)
        .await?
    {
        KeyedRequest::Replay(stored) => return Ok(replay(&stored)),
        KeyedRequest::Run(claim) => claim,
    };
    match create().await {
        Ok(response) if response.status().is_success() => {
            let (stored, response) = keep(response).await?;
            ingest
                .store_idempotent_response(account, &key, &claim, &stored)
                .await;
            Ok(response)
        }
        answered => {
            ingest.release_idempotency_key(account, &key, &claim).await;
            answered
        }
    }
}

/// The request's key: `None` without the header; one header of 1 to 255 printable ASCII
/// characters, else 422.
fn key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = req.headers().get_all(IDEMPOTENCY_KEY);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let refused = || ApiError::validation("Idempotency-Key", KeyError);
    if values.next().is_some() {
        return Err(ApiError::validation(
            "Idempotency-Key",
            "send the header once",
        ));
    }
    let raw = first.to_str().map_err(|_| refused())?;
    IdempotencyKey::parse(raw).map(Some).map_err(|_| refused())
}

/// The body in canonical JSON; an empty body is `{}` (as the JSON extractor reads it). The
/// handler parsed it already, so anything else cannot happen; it is then compared as is.
fn canonical_body(body: &[u8]) -> Vec<u8> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return b"{}".to_vec();
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => serde_json::to_vec(&sorted(value)).unwrap_or_else(|_| body.to_vec()),
        Err(_) => body.to_vec(),
    }
}

/// `value` with every object's keys in order (whatever map serde_json was built with).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Reads a response whole (a create's JSON), for storing; gives back an equal response.
async fn keep(response: HttpResponse) -> Result<(StoredResponse, HttpResponse), ApiError> {
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = response.headers().get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), value.to_owned()))
        })
        .collect();
    let status = response.status().as_u16();
    let (response, body) = response.into_parts();
    let body = actix_web::body::to_bytes(body).await.map_err(|e| {
        ApiError::from(roughy_app::IngestError::Internal(
            format!("reading a create's response: {e}").into(),
        ))
    })?;
    let stored = StoredResponse {
        status,
        headers,
        body: body.to_vec(),
    };
    Ok((stored, response.set_body(body).map_into_boxed_body()))
}

/// The stored response again, marked `Idempotent-Replayed: true`.
fn replay(stored: &StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            response.insert_header((name, value));
        }
    }
    response.insert_header((HeaderName::from_static(REPLAYED), "true"));
    if !stored.headers.iter().any(|(n, _)| n == "content-type") {
        response.insert_header((header::CONTENT_TYPE, "application/json"));
    }
    response.body(stored.body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_differ_only_in_key_order_and_whitespace_are_one_request() {
        let a = canonical_body(br#"{"b": 1, "a": {"y": [1, 2], "x": null}}"#);
        let b = canonical_body(b"{\"a\":{\"x\":null,\"y\":[1,2]},\n \"b\":1}");
        assert_eq!(a, b);
        assert_ne!(
            a,
            canonical_body(br#"{"b": 1, "a": {"y": [2, 1], "x": null}}"#)
        );
        assert_eq!(canonical_body(b"  "), canonical_body(b"{}"));
    }

    #[test]
    fn a_replay_repeats_status_headers_and_body() {
        let stored = StoredResponse {
            status: 201,
            headers: vec![
                ("location".into(), "http://h/v1/uploads/upl_1".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: br#"{"id":"ast_1"}"#.to_vec(),
        };
        let r = replay(&stored);
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(
            r.headers().get("location").unwrap(),
            "http://h/v1/uploads/upl_1"
        );
        assert_eq!(r.headers().get(REPLAYED).unwrap(), "true");
        assert_eq!(r.headers().get("content-type").unwrap(), "application/json");
    }

    #[test]
    fn keys_are_validated_and_sent_once() {
        let req = |values: &[&str]| {
            let mut r = actix_web::test::TestRequest::default();
            for v in values {
                r = r.append_header((IDEMPOTENCY_KEY, *v));
            }
            r.to_http_request()
        };
        assert_eq!(key(&req(&[])).unwrap(), None);
        assert_eq!(key(&req(&["k-1"])).unwrap().unwrap().as_str(), "k-1");
        for bad in [&["a", "b"][..], &[""], &[&"x".repeat(256)]] {
            let e = key(&req(bad)).unwrap_err();
            assert_eq!(e.code(), "validation_error", "{bad:?}");
            assert!(e.to_string().contains("Idempotency-Key"), "{e}");
        }
    }
}
