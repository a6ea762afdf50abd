#![doc = include_str!("../README.md")]

mod direct;
mod dto;
mod error;
mod extract;
mod idempotency;
mod openapi;
mod routes;

#[cfg(test)]
mod fuzz;

use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::http::{header, Method};
use actix_web::web;

use roughy_app::ports::HealthCheck;
use roughy_app::Ingest;
use roughy_domain::{AdminToken, UploadTokens};

pub use direct::direct_upload_cors;
pub use error::{ApiError, ErrorBody};
pub use openapi::openapi_json;

/// The [`EventEncoder`](roughy_app::ports::EventEncoder) of webhook bodies: the event as
/// `WebhookEventDto` JSON (the asset as `GET /v1/assets/{id}` shows it, without
/// `download_url`).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonEvents;

impl roughy_app::ports::EventEncoder for JsonEvents {
    fn encode(&self, event: &roughy_domain::WebhookEvent) -> Vec<u8> {
        // Plain structs of strings and numbers: serialising them cannot fail.
        serde_json::to_vec(&dto::WebhookEventDto::from(event)).unwrap_or_default()
    }
}

/// Settings of the HTTP adapter.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// `ROUGHY_PUBLIC_URL`: the base of absolute URLs; `None` derives it from the request.
    pub public_url: Option<String>,
    /// `ROUGHY_TRUST_PROXY`: honour `Forwarded` / `X-Forwarded-*` when deriving it.
    pub trust_proxy: bool,
    /// `ROUGHY_ADMIN_TOKEN`: enables `/admin/v1` when set.
    pub admin_token: Option<AdminToken>,
    /// `ROUGHY_CORS_ORIGINS`: allowed origins; `*` allows any.
    pub cors_origins: Vec<String>,
    /// How long a PATCH body may be idle before it is cut.
    pub body_idle_timeout: Duration,
    /// Mints and checks the tokens of direct uploads' URLs (keyed by `ROUGHY_SIGNING_KEY`).
    pub upload_tokens: UploadTokens,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            trust_proxy: false,
            admin_token: None,
            cors_origins: vec!["*".to_owned()],
            body_idle_timeout: Duration::from_secs(60),
            // A key of this process only; the server hands in the configured one.
            upload_tokens: UploadTokens::new(roughy_domain::ids::random_base62(43).into_bytes()),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct HttpState {
    /// The use cases.
    pub ingest: Ingest,
    /// The adapter settings.
    pub settings: HttpSettings,
    /// What `GET /readyz` asks.
    pub readiness: Vec<Arc<dyn HealthCheck>>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Registers only `/healthz`, `/readyz` and `/openapi.json`: what a worker process serves.
pub fn configure_health(state: HttpState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state));
        routes::ops::configure(cfg);
    }
}

/// Registers every route. Used by the server and by the tests alike.
pub fn configure(state: HttpState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let admin = state.settings.admin_token.is_some();
        cfg.app_data(web::Data::new(state))
            .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::not_found().into()))
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::validation("query", e.to_string()).into()),
            );
        routes::ops::configure(cfg);
        routes::projects::configure(cfg);
        routes::assets::configure(cfg);
        routes::uploads::configure(cfg);
        routes::credits::configure(cfg);
        routes::downloads::configure(cfg);
        routes::webhooks::configure(cfg);
        routes::console::configure(cfg);
        if admin {
            routes::admin::configure(cfg);
        }
    }
}

/// Middleware: JSON responses say their charset (`application/json; charset=utf-8`).
///
/// # Errors
/// Passes the inner service's errors through.
pub async fn json_utf8(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json")
    {
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    Ok(res)
}

/// The id of one request: the client's `X-Request-Id` when it is a short printable token,
/// else a new one. Every log line of the request carries it (a tracing span), and the
/// response returns it in `X-Request-Id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The longest client-chosen id accepted.
    pub const MAX_LEN: usize = 128;

    /// The client's id if acceptable (1 to [`Self::MAX_LEN`] visible ASCII characters), else
    /// a fresh random one.
    pub fn from_client(header: Option<&header::HeaderValue>) -> Self {
        let client = header
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= Self::MAX_LEN)
            .filter(|v| v.bytes().all(|b| b.is_ascii_graphic()));
        match client {
            Some(id) => Self(id.to_owned()),
            None => Self(roughy_domain::ids::random_base62(22)),
        }
    }

    /// The id of the request being served, when called while serving one (error bodies
    /// carry it).
    pub fn current() -> Option<String> {
        CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
    }
}

tokio::task_local! {
    /// The id of the request whose future is running: set by [`request_id`] around the rest
    /// of the chain, so an error turned into a response anywhere inside can name it.
    static CURRENT_REQUEST_ID: String;
}

/// Middleware: gives the request its [`RequestId`], runs it inside a tracing span named
/// `request` with the id, method and path (and with [`RequestId::current`] answering it, for
/// error bodies), and returns the id in `X-Request-Id`.
///
/// # Errors
/// Passes the inner service's errors through.
pub async fn request_id(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    use tracing::Instrument;

    let id = RequestId::from_client(req.headers().get("x-request-id"));
    let span = tracing::info_span!(
        "request",
        request_id = %id.0,
        method = %req.method(),
        path = %req.path()
    );
    req.extensions_mut().insert(id.clone());
    let mut res = CURRENT_REQUEST_ID
        .scope(id.0.clone(), next.call(req).instrument(span))
        .await?;
    if let Ok(value) = header::HeaderValue::from_str(&id.0) {
        res.headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    Ok(res)
}

/// The app-wide fallback: an unknown route is a JSON 404.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// The response headers browsers may read (`Access-Control-Expose-Headers`), lowercase.
pub const EXPOSED_HEADERS: &str = "location, upload-offset, upload-length, upload-expires, \
     tus-resumable, tus-version, tus-extension, tus-max-size, idempotent-replayed, \
     upload-gone-reason, x-request-id";

/// CORS for browser clients: preflights answered without auth, TUS headers exposed.
pub fn cors(settings: &HttpSettings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("upload-offset"),
            header::HeaderName::from_static("upload-length"),
            header::HeaderName::from_static("tus-resumable"),
            header::HeaderName::from_static("upload-metadata"),
            header::HeaderName::from_static("upload-defer-length"),
            header::HeaderName::from_static("upload-concat"),
            header::HeaderName::from_static("x-http-method-override"),
            header::HeaderName::from_static("x-requested-with"),
            header::HeaderName::from_static(idempotency::IDEMPOTENCY_KEY),
        ])
        .expose_headers(
            EXPOSED_HEADERS
                .split(", ")
                .map(header::HeaderName::from_static),
        )
        .max_age(86_400);
    if settings.cors_origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin().send_wildcard();
    } else {
        for origin in &settings.cors_origins {
            cors = cors.allowed_origin(origin);
        }
    }
    cors
}
