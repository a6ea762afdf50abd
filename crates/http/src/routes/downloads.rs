//! `/v1/downloads/{asset_id}`: signed, short-lived links served by this service (local
//! storage). No bearer key; `Range` supported.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use roughy_app::ports::SignedDownload;
use roughy_domain::{AssetId, MediaFormat};

use super::resource;
use crate::error::{ApiError, ErrorBody};
use crate::extract::state;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/downloads/{asset_id}", "GET, HEAD, OPTIONS")
            .route(web::get().to(download))
            .route(web::head().to(download)),
    );
}

/// The signed query of a download link.
#[derive(Debug, Deserialize)]
pub struct SignedQuery {
    ext: Option<String>,
    expires: Option<i64>,
    sig: Option<String>,
}

/// Download an asset's bytes through a signed link.
#[utoipa::path(get, path = "/v1/downloads/{asset_id}", operation_id = "download_asset", tag = "downloads",
    params(("asset_id" = String, Path), ("ext" = String, Query), ("expires" = i64, Query), ("sig" = String, Query),
        ("Range" = Option<String>, Header, description = "bytes=start-end")),
    responses((status = 200, description = "The bytes, as the asset's content type", content(("audio/*"), ("video/*"))),
        (status = 206, description = "A range of the bytes, as the asset's content type", content(("audio/*"), ("video/*"))),
        (status = 403, body = ErrorBody, description = "invalid_signature: tampered or expired"),
        (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub async fn download(
    req: HttpRequest,
    asset_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let invalid = || ApiError::from(roughy_app::IngestError::InvalidSignature);
    // Parsed here, not by the `Query` extractor: a link whose query does not even parse (a
    // non-numeric `expires`, a repeated parameter) is a tampered link, 403 like any other.
    let query = web::Query::<SignedQuery>::from_query(req.query_string()).map_err(|_| invalid())?;
    let link = SignedDownload {
        asset_id: AssetId::parse(&asset_id).ok_or_else(invalid)?,
        format: query
            .ext
            .as_deref()
            .and_then(MediaFormat::from_extension)
            .ok_or_else(invalid)?,
        expires: query.expires.ok_or_else(invalid)?,
        signature: query.sig.clone().ok_or_else(invalid)?,
    };
    let ingest = &state(&req)?.ingest;
    let size = ingest.open_download(&link).await?;
    let range = match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        None => None,
        Some(raw) => match parse_range(raw, size) {
            Some(range) => Some(range),
            None => {
                let mut response =
                    actix_web::ResponseError::error_response(&ApiError::range_not_satisfiable());
                response.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header::HeaderValue::from_str(&format!("bytes */{size}"))
                        .map_err(|_| ApiError::range_not_satisfiable())?,
                );
                return Ok(response);
            }
        },
    };
    let (status, span) = match range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r),
        None => (StatusCode::OK, 0..size),
    };
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CONTENT_TYPE, link.format.content_type()))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{}.{}\"",
                link.asset_id,
                link.format.extension()
            ),
        ));
    if status == StatusCode::PARTIAL_CONTENT {
        response.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1)),
        ));
    }
    if req.method() == actix_web::http::Method::HEAD || span.is_empty() {
        return Ok(response.no_chunking(span.end - span.start).finish());
    }
    let stream = ingest.read_object(&link.asset_id, span.clone()).await?;
    Ok(response
        .no_chunking(span.end - span.start)
        .streaming(stream))
}

/// Parses one `bytes=` range against `size`; `None` when malformed or unsatisfiable.
///
/// actix-web's [`header::Range`] parses the header; the service serves one part only, so a
/// list of ranges is refused like a malformed one.
pub(crate) fn parse_range(raw: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let header::Range::Bytes(specs) = raw.trim().parse::<header::Range>().ok()? else {
        return None;
    };
    if raw.contains(',') {
        return None;
    }
    let [spec] = specs.as_slice() else {
        return None;
    };
    let (first, last) = spec.to_satisfiable_range(size)?;
    Some(first..last.checked_add(1)?)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_parse_like_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Some(90..100));
        assert_eq!(parse_range("bytes=50-500", 100), Some(50..100));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
