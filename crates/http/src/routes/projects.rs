//! `/v1/projects`.

use actix_web::{web, HttpRequest, HttpResponse};

use roughy_domain::ProjectId;

use super::resource;
use crate::dto::{CreateProjectBody, ProjectDto, ProjectList};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, ListQuery};
use crate::idempotency::once_per_key;
use crate::HttpState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/projects", "GET, POST, OPTIONS")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        resource("/v1/projects/{id}", "GET, DELETE, OPTIONS")
            .route(web::get().to(get))
            .route(web::delete().to(delete)),
    );
}

fn parse_id(raw: &str) -> Result<ProjectId, ApiError> {
    ProjectId::parse(raw).ok_or_else(ApiError::not_found)
}

/// Create a project.
#[utoipa::path(post, path = "/v1/projects", operation_id = "create_project", tag = "projects", request_body(content = Option<CreateProjectBody>, description = "Optional: no body is `{}`"),
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "Makes a retry safe: the same key with the same body within 24 hours returns the first response (Idempotent-Replayed: true); another body under the key is 422 idempotency_key_reused; while the first request runs, 409 idempotency_key_in_use. 1 to 255 printable ASCII characters, scoped to the account.")),
    responses(
        (status = 201, body = ProjectDto, headers(("Idempotent-Replayed" = String, description = "`true` on a response replayed for an Idempotency-Key"))),
        (status = 400, body = ErrorBody, description = "invalid_json"), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "idempotency_key_in_use"),
        (status = 422, body = ErrorBody, description = "validation_error or idempotency_key_reused")))]
pub async fn create(
    req: HttpRequest,
    state: web::Data<HttpState>,
    caller: Caller,
    body: JsonBody<Option<CreateProjectBody>>,
) -> Result<HttpResponse, ApiError> {
    // No body, `{}` and `null` are the same request: a project without a name.
    let JsonBody(body, raw) = body;
    let name = body.unwrap_or_default().try_into_domain()?;
    once_per_key(&req, &caller.0, "POST /v1/projects", &raw, || async {
        let project = state.ingest.create_project(&caller.0, name).await?;
        Ok(HttpResponse::Created().json(ProjectDto::from(project)))
    })
    .await
}

/// List projects, newest first.
#[utoipa::path(get, path = "/v1/projects", operation_id = "list_projects", tag = "projects", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50"), ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]*$", description = "next_cursor of the previous page; empty or absent: the first page")),
    responses((status = 200, body = ProjectList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    state: web::Data<HttpState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .ingest
        .list_projects(&caller.0, &query.page()?)
        .await?;
    Ok(HttpResponse::Ok().json(ProjectList::from(page)))
}

/// Get a project.
#[utoipa::path(get, path = "/v1/projects/{id}", operation_id = "get_project", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, body = ProjectDto), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    state: web::Data<HttpState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let project = state.ingest.get_project(&caller.0, &parse_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(ProjectDto::from(project)))
}

/// Delete a project and its assets.
#[utoipa::path(delete, path = "/v1/projects/{id}", operation_id = "delete_project", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "Project id")),
    responses((status = 204, description = "Deleted, with its assets."), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    state: web::Data<HttpState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .ingest
        .delete_project(&caller.0, &parse_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
