//! `/v1/uploads`: TUS 1.0.0 core + termination + expiration.
//!
//! There is no TUS creation request: uploads are opened by `POST /v1/assets`.

use actix_web::http::{header, Method};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures::StreamExt;

use roughy_app::ports::{BodyError, ByteStream};
use roughy_app::UploadView;
use roughy_domain::time_format::http_date;
use roughy_domain::tus::{parse_offset, TUS_EXTENSIONS, TUS_VERSION};
use roughy_domain::{SizeBytes, UploadId};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{authenticate_upload, state};

/// The methods of `/v1/uploads` (creation is `POST /v1/assets`).
const ALLOW_COLLECTION: &str = "OPTIONS";
/// The methods of an upload URL (`POST` only with `X-HTTP-Method-Override`).
const ALLOW_UPLOAD: &str = "HEAD, PATCH, DELETE, POST, OPTIONS";

/// The content type of a PATCH body.
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1/uploads")
            .wrap(DefaultHeaders::new().add(("Tus-Resumable", TUS_VERSION)))
            .service(
                web::resource("")
                    .route(web::method(Method::OPTIONS).to(options))
                    .default_service(web::to(|| async {
                        ApiError::method_not_allowed(ALLOW_COLLECTION)
                    })),
            )
            .service(
                web::resource("/{id}")
                    .route(web::method(Method::OPTIONS).to(options))
                    .route(web::head().to(head))
                    .route(web::patch().to(patch))
                    .route(web::delete().to(delete))
                    .route(web::post().to(post_override))
                    .default_service(web::to(|| async {
                        ApiError::method_not_allowed(ALLOW_UPLOAD)
                    })),
            ),
    );
}

/// Capability discovery: no auth, no body.
#[utoipa::path(options, path = "/v1/uploads", operation_id = "upload_options", tag = "uploads",
    responses((status = 204, description = "TUS capabilities", headers(
        ("Tus-Resumable" = String), ("Tus-Version" = String), ("Tus-Extension" = String), ("Tus-Max-Size" = u64)))))]
pub async fn options() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Tus-Version", TUS_VERSION))
        .insert_header(("Tus-Extension", TUS_EXTENSIONS))
        .insert_header(("Tus-Max-Size", SizeBytes::MAX.to_string()))
        .finish()
}

/// Every non-OPTIONS TUS request must speak 1.0.0.
pub(crate) fn require_tus(req: &HttpRequest) -> Result<(), ApiError> {
    match req
        .headers()
        .get("Tus-Resumable")
        .and_then(|v| v.to_str().ok())
    {
        Some(v) if v.trim() == TUS_VERSION => Ok(()),
        _ => Err(ApiError::unsupported_tus_version()),
    }
}

fn parse_id(raw: &str) -> Result<UploadId, ApiError> {
    UploadId::parse(raw).ok_or_else(ApiError::not_found)
}

fn with_expiry(mut response: actix_web::HttpResponseBuilder, view: &UploadView) -> HttpResponse {
    response.insert_header(("Upload-Offset", view.offset.to_string()));
    if let Some(expires) = view.expires_at {
        response.insert_header(("Upload-Expires", http_date(expires)));
    }
    response.finish()
}

/// The canonical offset for resuming.
#[utoipa::path(head, path = "/v1/uploads/{id}", operation_id = "get_upload_offset", tag = "uploads", security(("bearer" = []), ()),
    params(("id" = String, Path, description = "Upload id"), ("token" = Option<String>, Query, description = "A direct upload's token, as its upload_url carries it: with it no Authorization is needed (and the token alone decides); without it the bearer key does"), ("Tus-Resumable" = String, Header, pattern = "^1\\.0\\.0$", description = "1.0.0, the protocol version; a missing or other value is 412 unsupported_tus_version (checked before authentication, as TUS requires)")),
    responses(
        (status = 200, description = "Upload state", headers(("Upload-Offset" = u64), ("Upload-Length" = u64), ("Upload-Expires" = String), ("Cache-Control" = String))),
        (status = 401, description = "No valid key, or a token that is not this upload's"), (status = 404, description = "Never issued"), (status = 410, description = "Terminated, expired or rejected", headers(("Upload-Gone-Reason" = String, description = "Why: unsupported_media_type (the first chunk was not audio or video), upload_expired, upload_terminated or asset_deleted"))),
        (status = 412, description = "Tus-Resumable missing or unsupported")))]
pub async fn head(req: HttpRequest, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    require_tus(&req)?;
    let account = authenticate_upload(&req, &id).await?;
    let view = state(&req)?
        .ingest
        .upload_status(&account, &parse_id(&id)?)
        .await?;
    let mut response = HttpResponse::Ok();
    response
        .insert_header(("Upload-Length", view.length.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    Ok(with_expiry(response, &view))
}

/// Upload one chunk at `Upload-Offset`.
#[utoipa::path(patch, path = "/v1/uploads/{id}", operation_id = "upload_chunk", tag = "uploads", security(("bearer" = []), ()),
    params(("id" = String, Path, description = "Upload id"), ("token" = Option<String>, Query, description = "A direct upload's token, as its upload_url carries it: with it no Authorization is needed (and the token alone decides); without it the bearer key does"), ("Tus-Resumable" = String, Header, pattern = "^1\\.0\\.0$", description = "1.0.0, the protocol version; a missing or other value is 412 unsupported_tus_version (checked before authentication, as TUS requires)"),
        ("Upload-Offset" = u64, Header, description = "Must equal the stored offset")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Chunk stored", headers(("Upload-Offset" = u64), ("Upload-Expires" = String))),
        (status = 400, body = ErrorBody, description = "invalid_upload_offset or first_chunk_too_small"),
        (status = 401, body = ErrorBody, description = "unauthorized: no valid key, or a token that is not this upload's"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "offset_mismatch or unsupported_media_type"),
        (status = 410, body = ErrorBody, description = "upload_gone", headers(("Upload-Gone-Reason" = String, description = "Why: unsupported_media_type (the first chunk was not audio or video), upload_expired, upload_terminated or asset_deleted"))), (status = 412, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "upload_length_exceeded"), (status = 415, body = ErrorBody),
        (status = 423, body = ErrorBody, description = "upload_locked")))]
pub async fn patch(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_tus(&req)?;
    let account = authenticate_upload(&req, &id).await?;
    let state = state(&req)?;
    require_offset_octet_stream(&req)?;
    let offset = upload_offset(&req)?;
    let chunk_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = idle_limited(payload, state.settings.body_idle_timeout);
    let view = state
        .ingest
        .append_chunk(&account, &parse_id(&id)?, offset, chunk_len, body)
        .await?;
    Ok(with_expiry(HttpResponse::NoContent(), &view))
}

/// A PATCH body must be `application/offset+octet-stream` (parameters allowed, any letter
/// case: actix-web's [`HttpMessage::mime_type`] parses it).
pub(crate) fn require_offset_octet_stream(req: &HttpRequest) -> Result<(), ApiError> {
    let ok = matches!(req.mime_type(), Ok(Some(m)) if m.essence_str() == OFFSET_OCTET_STREAM);
    if ok {
        Ok(())
    } else {
        Err(ApiError::unsupported_content_type(OFFSET_OCTET_STREAM))
    }
}

/// `Upload-Offset`: a non-negative decimal integer.
pub(crate) fn upload_offset(req: &HttpRequest) -> Result<u64, ApiError> {
    req.headers()
        .get("Upload-Offset")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_offset)
        .ok_or_else(ApiError::invalid_upload_offset)
}

/// The request body as a stream that fails after `idle` without bytes, and ends after an error.
fn idle_limited(payload: web::Payload, idle: std::time::Duration) -> ByteStream<'static> {
    Box::pin(futures::stream::unfold(
        Some(payload),
        move |payload| async move {
            let mut payload = payload?;
            match tokio::time::timeout(idle, payload.next()).await {
                Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(payload))),
                Ok(Some(Err(e))) => Some((Err(BodyError::Interrupted(e.to_string())), None)),
                Ok(None) => None,
                Err(_) => Some((Err(BodyError::IdleTimeout), None)),
            }
        },
    ))
}

/// Cancel a pending upload and delete its asset and bytes. Idempotent.
#[utoipa::path(delete, path = "/v1/uploads/{id}", operation_id = "terminate_upload", tag = "uploads", security(("bearer" = []), ()),
    params(("id" = String, Path, description = "Upload id"), ("token" = Option<String>, Query, description = "A direct upload's token, as its upload_url carries it: with it no Authorization is needed (and the token alone decides); without it the bearer key does"), ("Tus-Resumable" = String, Header, pattern = "^1\\.0\\.0$", description = "1.0.0, the protocol version; a missing or other value is 412 unsupported_tus_version (checked before authentication, as TUS requires)")),
    responses((status = 204, description = "Cancelled (or already gone)"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "upload_complete: delete the asset instead"), (status = 412, body = ErrorBody)))]
pub async fn delete(req: HttpRequest, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    require_tus(&req)?;
    let account = authenticate_upload(&req, &id).await?;
    state(&req)?
        .ingest
        .terminate_upload(&account, &parse_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST` with `X-HTTP-Method-Override: PATCH|DELETE|HEAD` (TUS core); anything else is 405.
pub async fn post_override(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    match method_override(&req) {
        Some(Method::PATCH) => patch(req, id, payload).await,
        Some(Method::DELETE) => delete(req, id).await,
        Some(Method::HEAD) => head(req, id).await,
        _ => Err(ApiError::method_not_allowed(ALLOW_UPLOAD)),
    }
}

/// The method `X-HTTP-Method-Override` names, when it is one a POST may stand for.
pub(crate) fn method_override(req: &HttpRequest) -> Option<Method> {
    let value = req
        .headers()
        .get("X-HTTP-Method-Override")?
        .to_str()
        .ok()?
        .trim()
        .to_ascii_uppercase();
    match value.as_str() {
        "PATCH" => Some(Method::PATCH),
        "DELETE" => Some(Method::DELETE),
        "HEAD" => Some(Method::HEAD),
        _ => None,
    }
}
