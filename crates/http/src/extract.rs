//! Request parsing: bearer auth, JSON bodies, list queries, cursors, the public base URL.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{mime, web, FromRequest, HttpMessage, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use time::OffsetDateTime;

use roughy_app::{Cursor, PageRequest};
use roughy_domain::{AccountId, UploadId};

use crate::error::ApiError;
use crate::HttpState;

/// The shared state, from the request.
pub fn state(req: &HttpRequest) -> Result<&HttpState, ApiError> {
    req.app_data::<web::Data<HttpState>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| ApiError::from(roughy_app::IngestError::Internal("state missing".into())))
}

/// The bearer credential of a request, if it has one.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Resolves the caller's account from `Authorization: Bearer sk_…`.
pub async fn authenticate(req: &HttpRequest) -> Result<AccountId, ApiError> {
    let state = state(req)?;
    let token = bearer(req).ok_or_else(ApiError::unauthorized)?;
    Ok(state.ingest.authenticate(token).await?)
}

/// The `token` query parameter of a direct upload's URL, if the request has one.
pub fn upload_token(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// The account a request on an upload URL acts for. With a `token` query parameter (a direct
/// upload's URL), the token alone decides, whatever `Authorization` says: it must have been
/// minted for this upload id (else 401 `unauthorized`), and it acts for the upload's owner.
/// Without one, the bearer key does, as everywhere else.
pub async fn authenticate_upload(req: &HttpRequest, raw_id: &str) -> Result<AccountId, ApiError> {
    let Some(token) = upload_token(req.query_string()) else {
        return authenticate(req).await;
    };
    let state = state(req)?;
    let id = UploadId::parse(raw_id).ok_or_else(ApiError::unauthorized)?;
    state
        .settings
        .upload_tokens
        .verify(&id, token)
        .ok_or_else(ApiError::unauthorized)?;
    Ok(state.ingest.upload_owner(&id).await?)
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub AccountId);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await.map(Caller) })
    }
}

/// The largest JSON body we read.
const JSON_LIMIT: usize = 64 * 1024;

/// A JSON body parsed with the field path in every error: malformed JSON is 400
/// `invalid_json`; a wrong type, missing or unknown field is 422 `validation_error`. The body as
/// received comes with it (an `Idempotency-Key` compares it).
#[derive(Debug)]
pub struct JsonBody<T>(pub T, pub web::Bytes);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = json_content_type_ok(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::unsupported_content_type("application/json"));
            }
            let bytes = bytes
                .await
                .map_err(|e| ApiError::invalid_json(e.to_string()))?;
            if bytes.len() > JSON_LIMIT {
                return Err(ApiError::invalid_json("the JSON body is too large"));
            }
            let value = parse_json(if bytes.iter().all(u8::is_ascii_whitespace) {
                b"{}"
            } else {
                &bytes
            })?;
            Ok(JsonBody(value, bytes))
        })
    }
}

/// Whether a body may be read as JSON: no `Content-Type`, `application/json` or
/// `application/…+json`, in any letter case (media types are case-insensitive, RFC 9110
/// §8.3.1; actix-web's [`HttpMessage::mime_type`] parses them). A malformed value is refused.
pub(crate) fn json_content_type_ok(req: &HttpRequest) -> bool {
    match req.mime_type() {
        Ok(None) => true,
        Ok(Some(m)) => {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        }
        Err(_) => false,
    }
}

/// Parses a JSON object body, syntax before fields; an empty body counts as `{}`.
///
/// Malformed JSON (not UTF-8, not one JSON value, anything after it) is 400 `invalid_json`,
/// even where serde meets a field error first: in `{"a":1,}` the unknown `a` is read before the
/// trailing comma. Well-formed JSON that `T` refuses (wrong type, missing, unknown or duplicate
/// field) is 422 `validation_error` naming the field, and so is any top-level value other than
/// an object (`body`), which serde would otherwise read as a struct's fields in order
/// (`[…]`), except `null` for a `T` that takes it (an optional body). A valid body is parsed once; only a refusal has the whole body checked for syntax
/// (as a [`serde_json::Value`]) before it is answered.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let refused =
        |field: String, message: String| match serde_json::from_slice::<serde_json::Value>(bytes) {
            Err(syntax) => ApiError::invalid_json(syntax.to_string()),
            Ok(_) => ApiError::validation(&field, message),
        };
    // `null` is read by serde as what it is: `None` for an optional body, a refusal otherwise.
    let is_null = bytes.trim_ascii() == b"null";
    if !is_null && bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(refused(
            "body".to_owned(),
            "must be a JSON object".to_owned(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let error = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(value) => {
            return de
                .end()
                .map(|()| value)
                .map_err(|e| ApiError::invalid_json(e.to_string()))
        }
        Err(error) => error,
    };
    let path = error.path().to_string();
    let inner = error.into_inner();
    if inner.classify() != serde_json::error::Category::Data {
        return Err(ApiError::invalid_json(inner.to_string()));
    }
    let field = if path == "." { "body".to_owned() } else { path };
    Err(refused(field, strip_position(&inner.to_string())))
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The query of list endpoints.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// 1..=100.
    pub limit: Option<String>,
    /// Opaque.
    pub cursor: Option<String>,
    /// Assets only.
    pub project_id: Option<String>,
    /// Assets only.
    pub state: Option<String>,
}

impl ListQuery {
    /// The page request: `limit` 1..=100 (default 50) and a decoded cursor.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = match &self.limit {
            None => PageRequest::DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=PageRequest::MAX_LIMIT).contains(n))
                .ok_or_else(|| ApiError::validation("limit", "must be an integer from 1 to 100"))?,
        };
        let cursor = match self.cursor.as_deref() {
            // `cursor=` (empty) is the first page, as no cursor is.
            None | Some("") => None,
            Some(raw) => Some(
                decode_cursor(raw)
                    .ok_or_else(|| ApiError::validation("cursor", "malformed cursor"))?,
            ),
        };
        Ok(PageRequest { limit, cursor })
    }
}

/// Encodes a cursor as opaque URL-safe text.
pub fn encode_cursor(cursor: &Cursor) -> String {
    let raw = format!("{}:{}", cursor.created_at.unix_timestamp_nanos(), cursor.id);
    URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn decode_cursor(raw: &str) -> Option<Cursor> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (nanos, id) = text.split_once(':')?;
    let created_at = OffsetDateTime::from_unix_timestamp_nanos(nanos.parse().ok()?).ok()?;
    let id_ok = !id.is_empty()
        && id.len() <= 80
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    id_ok.then(|| Cursor {
        created_at,
        id: id.to_owned(),
    })
}

/// The public base URL (`scheme://host`, no trailing slash) for absolute links.
///
/// `ROUGHY_PUBLIC_URL` when set; else from the request: `Forwarded` / `X-Forwarded-*` only when
/// `ROUGHY_TRUST_PROXY=1`, otherwise the `Host` header and plain `http`.
pub fn base_url(req: &HttpRequest) -> String {
    let Ok(state) = state(req) else {
        return String::new();
    };
    if let Some(url) = &state.settings.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    if state.settings.trust_proxy {
        let info = req.connection_info();
        return format!("{}://{}", info.scheme(), info.host());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| req.app_config().host().to_owned());
    format!("http://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            created_at: OffsetDateTime::UNIX_EPOCH + time::Duration::microseconds(123),
            id: "ast_abc".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        for bad in ["", "!!", "bm9wZQ", &URL_SAFE_NO_PAD.encode("12:a/b")] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only deserialised: the tests look at the errors")]
    struct Body {
        size_bytes: u64,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"size_bytes": "x"}"#).unwrap_err();
        assert_eq!(e.code(), "validation_error");
        assert!(e.to_string().contains("size_bytes"), "{e}");
        let e = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert!(e.to_string().contains("size_bytes"), "{e}");
        let e = parse_json::<Body>(br#"{"size_bytes": 1, "x": 2}"#).unwrap_err();
        assert!(e.to_string().contains('x'), "{e}");
        assert_eq!(
            parse_json::<Body>(br#"{"size_bytes": "#)
                .unwrap_err()
                .code(),
            "invalid_json"
        );
        assert_eq!(
            parse_json::<Body>(br#"{"size_bytes": 1} x"#)
                .unwrap_err()
                .code(),
            "invalid_json"
        );
    }

    #[test]
    fn json_content_types_match_in_any_case() {
        // Found by the parser fuzz: the `+json` suffix was matched case-sensitively.
        let ok = |ct: &str| {
            let req = actix_web::test::TestRequest::default()
                .insert_header((header::CONTENT_TYPE, ct))
                .to_http_request();
            json_content_type_ok(&req)
        };
        assert!(ok("application/ld+Json"));
        assert!(ok("APPLICATION/JSON; charset=utf-8"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/jsonx"));
    }

    #[test]
    fn json_syntax_is_judged_before_fields() {
        // Each would be a field error (unknown, mistyped, missing, duplicate) if well-formed.
        for bad in [
            r#"{"a":1,}"#,
            r#"{"size_bytes":1,}"#,
            r#"{"size_bytes": "x""#,
            r#"{"size_bytes": "x", "y": tru}"#,
            r#"{"a": [1,]}"#,
            r#"{"a": 1"#,
            r#"{"size_bytes": 1, "size_bytes": 2,}"#,
            r#"[1,]"#,
            r#"nul"#,
            "{\"a\": \"\u{7}\"}",
        ] {
            let e = parse_json::<Body>(bad.as_bytes()).expect_err(bad);
            assert_eq!(e.code(), "invalid_json", "{bad}: {e}");
        }
        // Not UTF-8, inside the value of an unknown field.
        let e = parse_json::<Body>(b"{\"a\": \"\xff\"}").expect_err("not UTF-8");
        assert_eq!(e.code(), "invalid_json", "{e}");
        // Well-formed: the field error stands.
        for (good, field) in [
            (r#"{"a":1}"#, "a"),
            (r#"{"size_bytes": "x"}"#, "size_bytes"),
            (r#"[1]"#, "body"),
            (r#""x""#, "body"),
            (r#"null"#, "body"),
            (r#" 1 "#, "body"),
        ] {
            let e = parse_json::<Body>(good.as_bytes()).expect_err(good);
            assert_eq!(e.code(), "validation_error", "{good}: {e}");
            assert!(e.to_string().contains(field), "{good}: {e}");
        }
    }
}
