//! Operations: liveness, readiness, the OpenAPI document.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::resource;
use roughy_app::IngestError;

use crate::error::ApiError;
use crate::extract::state;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz", "GET, OPTIONS").route(web::get().to(healthz)))
        .service(resource("/readyz", "GET, OPTIONS").route(web::get().to(readyz)))
        .service(resource("/openapi.json", "GET, OPTIONS").route(web::get().to(openapi)));
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations", responses((status = 200, description = "The process runs.")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 only when the database and blob storage answer, else 503.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations", responses(
    (status = 200, description = "Dependencies answer."),
    (status = 503, description = "A dependency does not answer.")))]
pub async fn readyz(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let state = state(&req)?;
    let mut failing = Vec::new();
    for check in &state.readiness {
        if let Err(e) = check.check().await {
            tracing::warn!(dependency = check.name(), error = %e, "readiness check failed");
            failing.push(check.name());
        }
    }
    if failing.is_empty() {
        Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
    } else {
        // The same mapping as every other route: 503 `service_unavailable`, logged once.
        Err(
            IngestError::Unavailable(format!("not answering: {}", failing.join(", ")).into())
                .into(),
        )
    }
}

/// The OpenAPI 3.1 document.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::openapi_json())
}
