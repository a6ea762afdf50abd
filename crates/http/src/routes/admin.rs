//! `/admin/v1`: the operator API, enabled only when `ROUGHY_ADMIN_TOKEN` is set.

use actix_web::{web, HttpRequest, HttpResponse};

use roughy_domain::time_format::rfc3339;
use roughy_domain::{AccountId, ApiKeyId};

use super::resource;
use crate::dto::{AccountDto, ApiKeyDto, CreateAccountBody, LedgerEntryDto, TopUpBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{bearer, JsonBody};
use crate::HttpState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/admin/v1/accounts", "POST, OPTIONS").route(web::post().to(create_account)),
    )
    .service(
        resource("/admin/v1/accounts/{id}/api-keys", "POST, OPTIONS")
            .route(web::post().to(mint_key)),
    )
    .service(
        resource("/admin/v1/api-keys/{id}", "DELETE, OPTIONS").route(web::delete().to(revoke_key)),
    )
    .service(
        resource("/admin/v1/accounts/{id}/top-ups", "POST, OPTIONS").route(web::post().to(top_up)),
    );
}

fn require_admin(req: &HttpRequest, state: &HttpState) -> Result<(), ApiError> {
    let token = state
        .settings
        .admin_token
        .as_ref()
        .ok_or_else(ApiError::not_found)?;
    match bearer(req) {
        Some(presented) if token.matches(presented) => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

fn account_id(raw: &str) -> Result<AccountId, ApiError> {
    AccountId::parse(raw).ok_or_else(ApiError::not_found)
}

/// Create an account (balance 0).
#[utoipa::path(post, path = "/admin/v1/accounts", operation_id = "create_account", tag = "admin", request_body(content = Option<CreateAccountBody>, description = "Optional: no body is `{}`"),
    security(("admin" = [])), responses((status = 201, body = AccountDto), (status = 400, body = ErrorBody, description = "invalid_json"), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_account(
    req: HttpRequest,
    state: web::Data<HttpState>,
    body: JsonBody<Option<CreateAccountBody>>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    // No body, `{}` and `null` are the same request: an account without a name.
    let name = body.0.and_then(|b| b.name);
    let account = state.ingest.create_account(name).await?;
    Ok(HttpResponse::Created().json(AccountDto::new(account, 0)))
}

/// Mint an API key; the secret is shown once.
#[utoipa::path(post, path = "/admin/v1/accounts/{id}/api-keys", operation_id = "mint_api_key", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "Account id")),
    responses((status = 201, body = ApiKeyDto), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn mint_key(
    req: HttpRequest,
    state: web::Data<HttpState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let minted = state.ingest.mint_api_key(&account_id(&id)?).await?;
    Ok(HttpResponse::Created().json(ApiKeyDto {
        id: minted.key.id.to_string(),
        key: minted.secret.expose().to_owned(),
        created_at: rfc3339(minted.key.created_at),
    }))
}

/// Revoke an API key at once.
#[utoipa::path(delete, path = "/admin/v1/api-keys/{id}", operation_id = "revoke_api_key", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "API key id")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    req: HttpRequest,
    state: web::Data<HttpState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let id = ApiKeyId::parse(&id).ok_or_else(ApiError::not_found)?;
    state.ingest.revoke_api_key(&id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Credit an account; activates its `pending_payment` assets the balance covers, oldest first.
#[utoipa::path(post, path = "/admin/v1/accounts/{id}/top-ups", operation_id = "top_up", tag = "admin", request_body = TopUpBody,
    security(("admin" = [])), params(("id" = String, Path, description = "Account id")),
    responses((status = 201, body = LedgerEntryDto), (status = 400, body = ErrorBody, description = "invalid_json"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn top_up(
    req: HttpRequest,
    state: web::Data<HttpState>,
    id: web::Path<String>,
    body: JsonBody<TopUpBody>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let outcome = state
        .ingest
        .top_up(&account_id(&id)?, body.0.credits)
        .await?;
    Ok(HttpResponse::Created().json(LedgerEntryDto::from(outcome)))
}
