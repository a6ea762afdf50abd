//! `/v1/credits`.

use actix_web::{web, HttpResponse};

use super::resource;
use crate::dto::{BalanceDto, LedgerList};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, ListQuery};
use crate::HttpState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/credits", "GET, OPTIONS").route(web::get().to(balance)))
        .service(resource("/v1/credits/ledger", "GET, OPTIONS").route(web::get().to(ledger)));
}

/// The credit balance.
#[utoipa::path(get, path = "/v1/credits", operation_id = "get_balance", tag = "credits", security(("bearer" = [])),
    responses((status = 200, body = BalanceDto), (status = 401, body = ErrorBody)))]
pub async fn balance(
    state: web::Data<HttpState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let balance = state.ingest.balance(&caller.0).await?;
    Ok(HttpResponse::Ok().json(BalanceDto { balance }))
}

/// The credit ledger, newest first.
#[utoipa::path(get, path = "/v1/credits/ledger", operation_id = "list_ledger", tag = "credits", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50"), ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]*$", description = "next_cursor of the previous page; empty or absent: the first page")),
    responses((status = 200, body = LedgerList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn ledger(
    state: web::Data<HttpState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state.ingest.ledger(&caller.0, &query.page()?).await?;
    Ok(HttpResponse::Ok().json(LedgerList::from(page)))
}
