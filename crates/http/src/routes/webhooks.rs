//! `/v1/webhooks`: endpoints that receive signed events about the caller's assets.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use roughy_domain::WebhookId;

use super::resource;
use crate::dto::{CreateWebhookBody, CreatedWebhookDto, DeliveryList, WebhookDto, WebhookList};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{base_url, Caller, JsonBody, ListQuery};
use crate::HttpState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/webhooks", "GET, POST, OPTIONS")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        resource("/v1/webhooks/{id}", "GET, DELETE, OPTIONS")
            .route(web::get().to(get))
            .route(web::delete().to(delete)),
    )
    .service(
        resource("/v1/webhooks/{id}/deliveries", "GET, OPTIONS").route(web::get().to(deliveries)),
    );
}

fn parse_id(raw: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(raw).ok_or_else(ApiError::not_found)
}

/// Register a webhook endpoint.
///
/// Every event it subscribes to is POSTed to `url` as JSON (`WebhookEvent`), signed with the
/// `secret` returned here (and only here): `Roughy-Signature: t=<unix seconds>,v1=<hex
/// HMAC-SHA256 of "<t>.<raw body>">`. A delivery that does not get a 2xx within 10 seconds is
/// retried with exponential backoff (30 s, doubling, at most 1 h apart) for 24 hours; it may
/// arrive more than once, so dedupe on the event `id`.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "create_webhook", tag = "webhooks", request_body = CreateWebhookBody,
    security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedWebhookDto, headers(("Location" = String, description = "The endpoint's URL"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "too_many_webhooks: the account has 20 endpoints already; delete one first"),
        (status = 422, body = ErrorBody, description = "validation_error: a malformed or refused url (unresolvable, or resolving to a private, loopback or link-local address), an empty or unknown event")))]
pub async fn create(
    req: HttpRequest,
    state: web::Data<HttpState>,
    caller: Caller,
    body: JsonBody<CreateWebhookBody>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body, _) = body;
    let webhook = state
        .ingest
        .create_webhook(&caller.0, &body.url, &body.events)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("{}/v1/webhooks/{}", base_url(&req), webhook.id),
        ))
        .json(CreatedWebhookDto {
            webhook: WebhookDto::from(&webhook),
            secret: webhook.secret.expose().to_owned(),
        }))
}

/// List the caller's webhook endpoints, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody)))]
pub async fn list(state: web::Data<HttpState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let webhooks = state.ingest.list_webhooks(&caller.0).await?;
    Ok(HttpResponse::Ok().json(WebhookList {
        data: webhooks.iter().map(WebhookDto::from).collect(),
    }))
}

/// Get a webhook endpoint (without its secret).
#[utoipa::path(get, path = "/v1/webhooks/{id}", operation_id = "get_webhook", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookDto), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    state: web::Data<HttpState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let webhook = state.ingest.get_webhook(&caller.0, &parse_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(WebhookDto::from(&webhook)))
}

/// Delete a webhook endpoint; its pending deliveries are not sent.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", operation_id = "delete_webhook", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted."), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    state: web::Data<HttpState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .ingest
        .delete_webhook(&caller.0, &parse_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// List an endpoint's deliveries, newest event first, each with its attempts.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", operation_id = "list_webhook_deliveries", tag = "webhooks", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Webhook id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]*$", description = "next_cursor of the previous page; empty or absent: the first page")),
    responses((status = 200, body = DeliveryList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn deliveries(
    state: web::Data<HttpState>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .ingest
        .list_deliveries(&caller.0, &parse_id(&id)?, &query.page()?)
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryList::from(page)))
}
