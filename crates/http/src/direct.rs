//! CORS of direct uploads bound to one origin (`cors_origin`): for such an upload URL only
//! that origin gets CORS answers, whatever `ROUGHY_CORS_ORIGINS` allows. The token names its
//! origin, so deciding takes no lookup.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use roughy_domain::{Origin, UploadId};

use crate::extract::upload_token;
use crate::HttpState;

/// The methods a direct upload URL serves.
const METHODS: &str = "HEAD, PATCH, DELETE, OPTIONS, POST";

/// The origin a request's direct upload URL is bound to, when it is one with a valid token.
fn bound_origin(req: &ServiceRequest) -> Option<Origin> {
    let id = req.path().strip_prefix("/v1/uploads/")?;
    let token = upload_token(req.query_string())?;
    let state = req.app_data::<web::Data<HttpState>>()?;
    state
        .settings
        .upload_tokens
        .verify(&UploadId::parse(id)?, token)?
        .cors_origin
}

/// Middleware (outside the service-wide CORS layer): on an upload URL bound to an origin, the
/// `Origin` is hidden from that layer; a preflight is answered here (with CORS headers only for
/// the bound origin), and an actual request's answer gets CORS headers only for it.
///
/// # Errors
/// Passes the inner service's errors through.
pub async fn direct_upload_cors(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(bound) = bound_origin(&req) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let Some(origin) = req.headers_mut().remove(header::ORIGIN).next() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let allowed = origin
        .to_str()
        .is_ok_and(|o| o.eq_ignore_ascii_case(bound.as_str()));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut answer = HttpResponse::NoContent();
        answer.insert_header((header::VARY, "Origin"));
        if allowed {
            answer
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, METHODS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"));
            if let Some(asked) = req
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .cloned()
            {
                answer.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, asked));
            }
        }
        return Ok(req.into_response(answer.finish()));
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    let headers = res.headers_mut();
    headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    if allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::HeaderValue::from_static(crate::EXPOSED_HEADERS),
        );
    }
    Ok(res)
}
