//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use crate::dto;
use crate::error;
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Roughy Assets API", version = "1.0.0",
        description = "Create assets, stream their bytes with TUS 1.0.0, and download them once processed and billed."),
    paths(
        routes::ops::healthz, routes::ops::readyz,
        routes::projects::create, routes::projects::list, routes::projects::get, routes::projects::delete,
        routes::assets::create, routes::assets::list, routes::assets::get, routes::assets::delete,
        routes::uploads::options, routes::uploads::head, routes::uploads::patch, routes::uploads::delete,
        routes::credits::balance, routes::credits::ledger,
        routes::downloads::download,
        routes::webhooks::create, routes::webhooks::list, routes::webhooks::get, routes::webhooks::delete, routes::webhooks::deliveries,
        routes::admin::create_account, routes::admin::mint_key, routes::admin::revoke_key, routes::admin::top_up,
    ),
    components(schemas(
        error::ErrorBody, error::ErrorDetail,
        dto::CreateProjectBody, dto::ProjectDto, dto::ProjectList,
        dto::CreateAssetBody, dto::AssetDto, dto::AssetDetailDto, dto::AssetList, dto::AssetTypeDto, dto::AssetStateDto,
        dto::BalanceDto, dto::LedgerEntryDto, dto::LedgerKindDto, dto::LedgerList,
        dto::CreateAccountBody, dto::AccountDto, dto::ApiKeyDto, dto::TopUpBody,
        dto::EventKindDto, dto::CreateWebhookBody, dto::WebhookDto, dto::CreatedWebhookDto, dto::WebhookList,
        dto::DeliveryStateDto, dto::AttemptDto, dto::DeliveryDto, dto::DeliveryList, dto::EventAssetDto, dto::WebhookEventDto,
    )),
    modifiers(&SecuritySchemes, &DependentSchemas),
    tags(
        (name = "projects"), (name = "assets"), (name = "uploads", description = "TUS 1.0.0"),
        (name = "credits"), (name = "downloads"),
        (name = "webhooks", description = "Signed event deliveries about the caller's assets; the body of each is a WebhookEvent"), (name = "admin", description = "Operator API"), (name = "operations"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
            components.add_security_scheme(
                "admin",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// The JSON Schema 2020-12 rules between fields that utoipa's annotations cannot state, so that
/// generators and fuzzers know them as the validation does:
/// - `CreateAssetBody`: a non-null `cors_origin` needs `"direct_upload": true`
///   (`CreateAssetBody::try_into_domain`).
struct DependentSchemas;

impl Modify for DependentSchemas {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        if let Some(RefOr::T(Schema::Object(body))) = components.schemas.get_mut("CreateAssetBody")
        {
            // `Extensions` serialises its entries flattened into the schema object: the one
            // place utoipa takes a keyword it has no field for.
            body.extensions.get_or_insert_with(Default::default).insert(
                "dependentSchemas".to_owned(),
                serde_json::json!({
                    "cors_origin": {"anyOf": [
                        {"properties": {"cors_origin": {"type": "null"}}},
                        {"required": ["direct_upload"], "properties": {"direct_upload": {"const": true}}},
                    ]}
                }),
            );
        }
    }
}

/// The document as pretty JSON (what `GET /openapi.json` serves and `openapi/` commits).
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
