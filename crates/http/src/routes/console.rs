//! `/console`: the web console, one self-contained page (HTML, CSS and a small TUS uploader
//! over XHR, all written for it) that drives the public API with a key the user pastes.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::resource;

/// The page, compiled in.
const PAGE: &str = include_str!("../console/index.html");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/console", "GET, OPTIONS").route(web::get().to(console)));
}

/// The console page. Its script and styles are inline and it talks only to this origin.
pub async fn console() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             img-src 'self' data:; frame-ancestors 'none'; form-action 'none'",
        ))
        .body(PAGE)
}
