//! The one place where errors become responses: status, stable code, JSON body.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use roughy_app::IngestError;
use roughy_domain::tus::{PatchRefusal, TUS_VERSION};
use roughy_domain::ValueError;

/// The error envelope: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A machine code and a human message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, lowercase snake_case.
    #[schema(example = "validation_error")]
    pub code: String,
    /// Human-readable.
    pub message: String,
    /// The request's id, as returned in `X-Request-Id` (quote it when reporting a problem);
    /// `null` only outside of a request.
    #[schema(example = "6b1qYQkq3xv0uXb2Zr9Jfa", required = true)]
    pub request_id: Option<String>,
}

/// The header of a 410 that names why the upload is gone (`unsupported_media_type`,
/// `upload_expired`, `upload_terminated`, `asset_deleted`).
pub const UPLOAD_GONE_REASON: &str = "Upload-Gone-Reason";

/// An error response of the API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The `Allow` header of a 405 (RFC 9110 §15.5.6).
    allow: Option<&'static str>,
    /// The `Upload-Gone-Reason` header of a 410: why the upload is gone, for clients that only
    /// see headers (a HEAD has no body).
    gone_reason: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            allow: None,
            gone_reason: None,
        }
    }

    /// Unknown route or resource.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    /// Wrong method on a known route; `allow` lists the route's methods (the `Allow` header).
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("method not allowed on this route; allowed: {allow}"),
            )
        }
    }

    /// Missing or bad credentials.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer credentials",
        )
    }

    /// Unparseable JSON.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    /// A field error; the message names the field.
    pub fn validation(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            format!("{field}: {message}"),
        )
    }

    /// `Tus-Resumable` missing or not 1.0.0.
    pub fn unsupported_tus_version() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "unsupported_tus_version",
            format!("Tus-Resumable: {TUS_VERSION} is required"),
        )
    }

    /// Wrong request content type.
    pub fn unsupported_content_type(expected: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            format!("Content-Type must be {expected}"),
        )
    }

    /// `Upload-Offset` missing or not a non-negative integer.
    pub fn invalid_upload_offset() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_upload_offset",
            "Upload-Offset must be a non-negative integer",
        )
    }

    /// A malformed `Range` header, or one past the end.
    pub fn range_not_satisfiable() -> Self {
        Self::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            "the requested range is not satisfiable",
        )
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        use IngestError as E;
        let message = e.to_string();
        let (status, code) = match &e {
            E::Unauthorized => return Self::unauthorized(),
            E::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            E::ProjectNotFound => (StatusCode::NOT_FOUND, "project_not_found"),
            E::InsufficientCredits => (StatusCode::PAYMENT_REQUIRED, "insufficient_credits"),
            E::Value(ValueError::SizeTooSmall { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "upload_too_small")
            }
            E::Value(ValueError::SizeTooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large")
            }
            E::Value(ValueError::Language) => return Self::validation("language", message),
            E::Value(ValueError::ProjectName) => return Self::validation("name", message),
            E::Validation { field, message } => return Self::validation(field, message),
            E::UploadGone(reason) => {
                let mut gone = Self::new(StatusCode::GONE, "upload_gone", message);
                gone.gone_reason = Some(reason.code());
                return gone;
            }
            E::Patch(PatchRefusal::OffsetMismatch { .. }) => {
                (StatusCode::CONFLICT, "offset_mismatch")
            }
            E::Patch(PatchRefusal::LengthExceeded { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "upload_length_exceeded")
            }
            E::Patch(PatchRefusal::FirstChunkTooSmall) => {
                (StatusCode::BAD_REQUEST, "first_chunk_too_small")
            }
            E::UnsupportedMedia => (StatusCode::CONFLICT, "unsupported_media_type"),
            E::UploadLocked => (StatusCode::LOCKED, "upload_locked"),
            E::UploadInterrupted { .. } => (StatusCode::CONFLICT, "upload_interrupted"),
            E::BodyStopped { idle: true, .. } => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            E::BodyStopped { idle: false, .. } => (StatusCode::BAD_REQUEST, "body_interrupted"),
            E::UploadComplete => (StatusCode::CONFLICT, "upload_complete"),
            E::InvalidSignature => (StatusCode::FORBIDDEN, "invalid_signature"),
            E::TooManyPendingUploads { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_pending_uploads")
            }
            E::TooManyWebhooks { .. } => (StatusCode::CONFLICT, "too_many_webhooks"),
            E::InsufficientStorage(cause) => {
                tracing::error!(cause = %cause.chain(), "storage is full");
                return Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "storage is full; the bytes acknowledged are kept, resume later",
                );
            }
            E::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            E::IdempotencyKeyInUse => (StatusCode::CONFLICT, "idempotency_key_in_use"),
            E::Conflict(cause) => {
                tracing::info!(cause = %cause.chain(), "state conflict");
                (StatusCode::CONFLICT, "conflict")
            }
            E::Unavailable(cause) => {
                tracing::warn!(cause = %cause.chain(), "dependency unavailable");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "a dependency is unavailable; retry later",
                );
            }
            E::Internal(cause) => {
                tracing::error!(cause = %cause.chain(), "internal error");
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error",
                );
            }
        };
        Self::new(status, code, message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        match self.code {
            "unauthorized" => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            "unsupported_tus_version" => {
                response.insert_header(("Tus-Version", TUS_VERSION));
            }
            _ => {}
        }
        if let Some(allow) = self.allow {
            response.insert_header((header::ALLOW, allow));
        }
        if let Some(reason) = self.gone_reason {
            response.insert_header((UPLOAD_GONE_REASON, reason));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
                request_id: crate::RequestId::current(),
            },
        })
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_and_code_table_matches_the_contract() {
        let table: Vec<(IngestError, u16, &str)> = vec![
            (IngestError::Unauthorized, 401, "unauthorized"),
            (IngestError::NotFound, 404, "not_found"),
            (IngestError::ProjectNotFound, 404, "project_not_found"),
            (
                IngestError::InsufficientCredits,
                402,
                "insufficient_credits",
            ),
            (
                ValueError::SizeTooSmall { min: 64 }.into(),
                422,
                "upload_too_small",
            ),
            (
                ValueError::SizeTooLarge { max: 1 }.into(),
                413,
                "upload_too_large",
            ),
            (ValueError::Language.into(), 422, "validation_error"),
            (
                IngestError::UploadGone(roughy_app::ports::GoneReason::Rejected),
                410,
                "upload_gone",
            ),
            (
                PatchRefusal::OffsetMismatch {
                    expected: 1,
                    claimed: 0,
                }
                .into(),
                409,
                "offset_mismatch",
            ),
            (
                PatchRefusal::LengthExceeded { end: 2, length: 1 }.into(),
                413,
                "upload_length_exceeded",
            ),
            (
                PatchRefusal::FirstChunkTooSmall.into(),
                400,
                "first_chunk_too_small",
            ),
            (IngestError::UnsupportedMedia, 409, "unsupported_media_type"),
            (IngestError::UploadLocked, 423, "upload_locked"),
            (IngestError::UploadComplete, 409, "upload_complete"),
            (
                IngestError::IdempotencyKeyReused,
                422,
                "idempotency_key_reused",
            ),
            (
                IngestError::IdempotencyKeyInUse,
                409,
                "idempotency_key_in_use",
            ),
            (IngestError::InvalidSignature, 403, "invalid_signature"),
            (
                IngestError::Unavailable("pool".into()),
                503,
                "service_unavailable",
            ),
            (IngestError::Internal("boom".into()), 500, "internal_error"),
            // A race between requests that the store refused: the client's to retry.
            (
                roughy_app::ports::RepoError::Conflict("raced".into()).into(),
                409,
                "conflict",
            ),
            (
                roughy_app::ports::RepoError::LeaseLost.into(),
                423,
                "upload_locked",
            ),
            (
                IngestError::TooManyPendingUploads { limit: 3 },
                429,
                "too_many_pending_uploads",
            ),
            (
                IngestError::TooManyWebhooks { limit: 20 },
                409,
                "too_many_webhooks",
            ),
            (
                IngestError::InsufficientStorage("ENOSPC".into()),
                507,
                "insufficient_storage",
            ),
        ];
        for (error, status, code) in table {
            let api = ApiError::from(error);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
        }
    }

    #[test]
    fn internal_causes_are_not_shown_to_the_client() {
        let api = ApiError::from(IngestError::Internal("password=hunter2".into()));
        assert!(!api.message.contains("hunter2"));
    }

    #[test]
    fn a_cause_keeps_its_source_for_the_log_line() {
        let io = std::io::Error::other("connection reset by peer");
        let cause = roughy_app::ports::Cause::with_source("the database is unavailable", io);
        assert_eq!(cause.to_string(), "the database is unavailable");
        assert_eq!(
            cause.chain(),
            "the database is unavailable: connection reset by peer"
        );
        let e = IngestError::from(roughy_app::ports::RepoError::Unavailable(cause));
        assert!(std::error::Error::source(&e).is_some(), "{e:?}");
    }
}
