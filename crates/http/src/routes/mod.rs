//! Routes, one file per resource.

pub mod admin;
pub mod assets;
pub mod credits;
pub mod downloads;
pub mod ops;
pub mod projects;
pub mod uploads;

use actix_web::http::Method;
use actix_web::{web, HttpResponse, Resource};

use crate::error::ApiError;

/// A resource whose unmatched methods answer 405 `method_not_allowed` and whose `OPTIONS`
/// answers 204 without auth (CORS preflights are answered earlier by the CORS layer).
pub fn resource(path: &str) -> Resource {
    web::resource(path)
        .route(web::method(Method::OPTIONS).to(|| async { HttpResponse::NoContent().finish() }))
        .default_service(web::to(|| async { ApiError::method_not_allowed() }))
}
