//! Routes, one file per resource.

pub mod admin;
pub mod assets;
pub mod console;
pub mod credits;
pub mod downloads;
pub mod ops;
pub mod projects;
pub mod uploads;
pub mod webhooks;

use actix_web::http::Method;
use actix_web::{web, HttpResponse, Resource};

use crate::error::ApiError;

/// A resource whose unmatched methods answer 405 `method_not_allowed` with `Allow: allow`
/// (the methods its routes serve, `OPTIONS` included) and whose `OPTIONS` answers 204 without
/// auth (CORS preflights are answered earlier by the CORS layer).
pub fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path)
        .route(web::method(Method::OPTIONS).to(move || async move {
            HttpResponse::NoContent()
                .insert_header((actix_web::http::header::ALLOW, allow))
                .finish()
        }))
        .default_service(web::to(move || async move {
            ApiError::method_not_allowed(allow)
        }))
}
