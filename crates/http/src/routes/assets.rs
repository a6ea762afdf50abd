//! `/v1/assets`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use roughy_app::AssetFilter;
use roughy_domain::time_format::http_date;
use roughy_domain::{AssetId, AssetState, ProjectId};

use super::resource;
use crate::dto::{AssetDetailDto, AssetDto, AssetList, AssetStateDto, CreateAssetBody, Urls};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{base_url, Caller, JsonBody, ListQuery};
use crate::idempotency::once_per_key;
use crate::HttpState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/assets", "GET, POST, OPTIONS")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        resource("/v1/assets/{id}", "GET, DELETE, OPTIONS")
            .route(web::get().to(get))
            .route(web::delete().to(delete)),
    );
}

fn parse_id(raw: &str) -> Result<AssetId, ApiError> {
    AssetId::parse(raw).ok_or_else(ApiError::not_found)
}

/// Create an asset and open its TUS upload.
///
/// The body is the asset (`pending_upload`); `Location` is the TUS transfer URL: PATCH chunks
/// there until the file is fully uploaded.
#[utoipa::path(post, path = "/v1/assets", operation_id = "create_asset", tag = "assets", request_body = CreateAssetBody,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "Makes a retry safe: the same key with the same body within 24 hours returns the first response (same asset, same Location, with Idempotent-Replayed: true); another body under the key is 422 idempotency_key_reused; while the first request runs, 409 idempotency_key_in_use. 1 to 255 printable ASCII characters, scoped to the account. A refused create does not keep the key.")),
    responses(
        (status = 201, body = AssetDto, headers(
            ("Location" = String, description = "Absolute TUS upload URL"),
            ("Upload-Expires" = String, description = "RFC 9110 HTTP-date"),
            ("Idempotent-Replayed" = String, description = "`true` on a response replayed for an Idempotency-Key"))),
        (status = 409, body = ErrorBody, description = "idempotency_key_in_use: a request with this Idempotency-Key is still running"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 402, body = ErrorBody, description = "Balance is zero or below (insufficient_credits)"),
        (status = 404, body = ErrorBody, description = "project_not_found"),
        (status = 413, body = ErrorBody, description = "upload_too_large"),
        (status = 422, body = ErrorBody, description = "validation_error, upload_too_small or idempotency_key_reused")))]
pub async fn create(
    req: HttpRequest,
    state: web::Data<HttpState>,
    caller: Caller,
    body: JsonBody<CreateAssetBody>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body, raw) = body;
    let command = body.try_into_domain()?;
    once_per_key(&req, &caller.0, "POST /v1/assets", &raw, || async {
        let (asset, upload) = state.ingest.create_asset(&caller.0, command).await?;
        let base = base_url(&req);
        let urls = Urls {
            base: &base,
            tokens: &state.settings.upload_tokens,
        };
        Ok(HttpResponse::Created()
            .insert_header((header::LOCATION, urls.upload(&asset)))
            .insert_header(("Upload-Expires", http_date(upload.expires_at)))
            .json(AssetDto::new(&asset, urls)))
    })
    .await
}

/// Get an asset, with a fresh signed `download_url` when ready.
#[utoipa::path(get, path = "/v1/assets/{id}", operation_id = "get_asset", tag = "assets", security(("bearer" = [])),
    params(("id" = String, Path, description = "Asset id")),
    responses((status = 200, body = AssetDetailDto), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    req: HttpRequest,
    state: web::Data<HttpState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let asset = state.ingest.get_asset(&caller.0, &parse_id(&id)?).await?;
    let base = base_url(&req);
    Ok(HttpResponse::Ok().json(AssetDetailDto {
        download_url: state.ingest.download_link(&base, &asset).await?,
        cuttable: asset.cuttable(),
        asset: AssetDto::new(
            &asset,
            Urls {
                base: &base,
                tokens: &state.settings.upload_tokens,
            },
        ),
    }))
}

/// List assets, newest first.
#[utoipa::path(get, path = "/v1/assets", operation_id = "list_assets", tag = "assets", security(("bearer" = [])),
    params(
        ("project_id" = Option<String>, Query, pattern = "^prj_[0-9A-Za-z]{1,64}$", description = "Only this project's assets"),
        ("state" = Option<AssetStateDto>, Query, description = "pending_upload, processing, pending_payment, ready or failed"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]*$", description = "next_cursor of the previous page; empty or absent: the first page")),
    responses((status = 200, body = AssetList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<HttpState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let filter = AssetFilter {
        project_id: match &query.project_id {
            None => None,
            Some(raw) => Some(
                ProjectId::parse(raw)
                    .ok_or_else(|| ApiError::validation("project_id", "not a project id"))?,
            ),
        },
        state: match &query.state {
            None => None,
            Some(raw) => Some(AssetState::parse(raw).ok_or_else(|| {
                ApiError::validation(
                    "state",
                    "must be one of pending_upload, processing, pending_payment, ready, failed",
                )
            })?),
        },
    };
    let assets = state.ingest.list_assets(&caller.0, &filter, &page).await?;
    let base = base_url(&req);
    let urls = Urls {
        base: &base,
        tokens: &state.settings.upload_tokens,
    };
    Ok(HttpResponse::Ok().json(AssetList::new(assets, urls)))
}

/// Delete an asset: rows at once, stored bytes purged, pending upload cancelled.
#[utoipa::path(delete, path = "/v1/assets/{id}", operation_id = "delete_asset", tag = "assets", security(("bearer" = [])),
    params(("id" = String, Path, description = "Asset id")),
    responses((status = 204, description = "Deleted."), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    state: web::Data<HttpState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .ingest
        .delete_asset(&caller.0, &parse_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
