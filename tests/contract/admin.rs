//! Contract rules: the operator API (CONTRACT §9).

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use roughy_tests::{error_code, Tenant, TestApp, ADMIN_TOKEN};

/// Every operator route, as `(method, path, body)`, against a real account and key.
fn routes(account_id: &str, key_id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/admin/v1/accounts".to_owned(),
            Some(json!({"name": "x"})),
        ),
        (
            Method::POST,
            format!("/admin/v1/accounts/{account_id}/api-keys"),
            None,
        ),
        (Method::DELETE, format!("/admin/v1/api-keys/{key_id}"), None),
        (
            Method::POST,
            format!("/admin/v1/accounts/{account_id}/top-ups"),
            Some(json!({"credits": 5})),
        ),
    ]
}

fn with_body(rb: RequestBuilder, body: &Option<Value>) -> RequestBuilder {
    match body {
        Some(b) => rb.json(b),
        None => rb,
    }
}

async fn create_account(app: &TestApp, body: Value) -> reqwest::Response {
    app.admin(Method::POST, "/admin/v1/accounts")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn mint(app: &TestApp, account_id: &str) -> reqwest::Response {
    app.admin(
        Method::POST,
        &format!("/admin/v1/accounts/{account_id}/api-keys"),
    )
    .send()
    .await
    .unwrap()
}

async fn top_up_raw(app: &TestApp, account_id: &str, body: Value) -> reqwest::Response {
    app.admin(
        Method::POST,
        &format!("/admin/v1/accounts/{account_id}/top-ups"),
    )
    .json(&body)
    .send()
    .await
    .unwrap()
}

async fn credits(app: &TestApp, key: &str) -> reqwest::Response {
    app.req(Method::GET, "/v1/credits", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_routes_are_404_when_the_admin_token_is_unset() {
    let app = TestApp::spawn_with(|c| c.http.settings.admin_token = None).await;
    let fake_account = "acc_QQQQQQQQQQQQQQQQQQQQQQ";
    let fake_key = "key_QQQQQQQQQQQQQQQQQQQQQQ";
    let mut cases = routes(fake_account, fake_key);
    cases.push((Method::GET, "/admin/v1/accounts".to_owned(), None));
    cases.push((Method::GET, "/admin/v1/nothing".to_owned(), None));
    cases.push((Method::OPTIONS, "/admin/v1/accounts".to_owned(), None));
    for (method, path, body) in cases {
        for token in [Some(ADMIN_TOKEN), Some("anything"), None] {
            let mut rb = app.client.request(method.clone(), app.url(&path));
            if let Some(token) = token {
                rb = rb.bearer_auth(token);
            }
            let r = with_body(rb, &body).send().await.unwrap();
            assert_eq!(
                error_code(r).await,
                (StatusCode::NOT_FOUND, "not_found".to_owned()),
                "{method} {path} with token {token:?} while the operator API is disabled"
            );
        }
    }
    // The public API still answers.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_without_the_admin_token_is_401() {
    let app = TestApp::spawn().await;
    let t = app.tenant(3).await;
    let key: Value = mint(&app, &t.account_id).await.json().await.unwrap();
    let key_id = key["id"].as_str().unwrap().to_owned();
    let secret = key["key"].as_str().unwrap().to_owned();
    for (method, path, body) in routes(&t.account_id, &key_id) {
        let attempts: Vec<(&str, RequestBuilder)> = vec![
            (
                "missing",
                app.client.request(method.clone(), app.url(&path)),
            ),
            (
                "wrong",
                app.client
                    .request(method.clone(), app.url(&path))
                    .bearer_auth("not-the-admin-token"),
            ),
            (
                "prefix of the token",
                app.client
                    .request(method.clone(), app.url(&path))
                    .bearer_auth(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]),
            ),
            (
                "token with a suffix",
                app.client
                    .request(method.clone(), app.url(&path))
                    .bearer_auth(format!("{ADMIN_TOKEN}x")),
            ),
            (
                "an API key",
                app.client
                    .request(method.clone(), app.url(&path))
                    .bearer_auth(&secret),
            ),
            (
                "basic scheme",
                app.client
                    .request(method.clone(), app.url(&path))
                    .header("Authorization", format!("Basic {ADMIN_TOKEN}")),
            ),
        ];
        for (what, rb) in attempts {
            let r = with_body(rb, &body).send().await.unwrap();
            assert_eq!(
                error_code(r).await,
                (StatusCode::UNAUTHORIZED, "unauthorized".to_owned()),
                "{method} {path} with {what} token"
            );
        }
    }
    // Nothing happened: the key still works, the balance is unchanged, no account was added.
    assert_eq!(credits(&app, &secret).await.status(), StatusCode::OK);
    assert_eq!(app.balance(&t).await, 3);
}

#[tokio::test]
async fn create_account_is_201_with_id_name_balance_created_at() {
    let app = TestApp::spawn().await;
    let r = create_account(&app, json!({"name": "Acme"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let a: Value = r.json().await.unwrap();
    assert!(a["id"].as_str().unwrap().starts_with("acc_"), "{a}");
    assert_eq!(a["name"], "Acme");
    assert_eq!(a["balance"], 0);
    assert!(a["created_at"].is_string(), "{a}");
    // The name is optional.
    for body in [json!({}), json!({"name": null})] {
        let r = create_account(&app, body.clone()).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{body}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["name"], Value::Null, "{body}");
        assert_eq!(b["balance"], 0);
        assert_ne!(b["id"], a["id"]);
    }
    // A field error is 422.
    let r = create_account(&app, json!({"name": 7})).await;
    assert_eq!(
        error_code(r).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error".to_owned()
        )
    );
}

#[tokio::test]
async fn mint_key_is_201_with_an_sk_secret_that_works() {
    let app = TestApp::spawn().await;
    let account: Value = create_account(&app, json!({"name": "k"}))
        .await
        .json()
        .await
        .unwrap();
    let account_id = account["id"].as_str().unwrap();
    let r = mint(&app, account_id).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let key: Value = r.json().await.unwrap();
    assert!(key["id"].as_str().unwrap().starts_with("key_"), "{key}");
    let secret = key["key"].as_str().unwrap();
    assert!(secret.starts_with("sk_"), "{key}");
    assert!(secret.len() >= 20, "a short secret: {secret}");
    assert!(key["created_at"].is_string(), "{key}");
    let r = credits(&app, secret).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"balance": 0}));
    // The key acts for that account: a top-up to it shows through the key.
    app.top_up(account_id, 9).await;
    let v: Value = credits(&app, secret).await.json().await.unwrap();
    assert_eq!(v["balance"], 9);
    // A second key is different; both work.
    let second: Value = mint(&app, account_id).await.json().await.unwrap();
    assert_ne!(second["key"], key["key"]);
    assert_ne!(second["id"], key["id"]);
    let second_secret = second["key"].as_str().unwrap();
    assert_eq!(credits(&app, second_secret).await.status(), StatusCode::OK);
    assert_eq!(credits(&app, secret).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn revoke_key_is_204_and_the_key_is_401_at_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant(1).await;
    let key: Value = mint(&app, &t.account_id).await.json().await.unwrap();
    let key_id = key["id"].as_str().unwrap();
    let secret = key["key"].as_str().unwrap();
    assert_eq!(credits(&app, secret).await.status(), StatusCode::OK);
    let r = app
        .admin(Method::DELETE, &format!("/admin/v1/api-keys/{key_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty(), "204 with a body");
    assert_eq!(
        error_code(credits(&app, secret).await).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".to_owned())
    );
    // Only that key: the account's other key still works.
    assert_eq!(app.balance(&t).await, 1);
}

#[tokio::test]
async fn revoking_an_unknown_key_is_404() {
    let app = TestApp::spawn().await;
    for id in ["key_QQQQQQQQQQQQQQQQQQQQQQ", "nope"] {
        let r = app
            .admin(Method::DELETE, &format!("/admin/v1/api-keys/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(r).await,
            (StatusCode::NOT_FOUND, "not_found".to_owned()),
            "{id}"
        );
    }
}

#[tokio::test]
async fn top_up_is_201_and_returns_the_ledger_entry() {
    let app = TestApp::spawn().await;
    let t = app.tenant(0).await;
    let r = top_up_raw(&app, &t.account_id, json!({"credits": 25})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let entry: Value = r.json().await.unwrap();
    assert!(entry["id"].as_str().unwrap().starts_with("led_"), "{entry}");
    assert_eq!(entry["kind"], "top_up");
    assert_eq!(entry["amount"], 25);
    assert_eq!(entry["balance_after"], 25);
    assert_eq!(entry["asset_id"], Value::Null);
    assert!(entry["created_at"].is_string());
    let second: Value = top_up_raw(&app, &t.account_id, json!({"credits": 5}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["balance_after"], 30);
    assert_eq!(app.balance(&t).await, 30);
    // It is the very entry the account's ledger shows.
    let ledger = app.get_json(&t, "/v1/credits/ledger").await;
    let listed = ledger["data"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&entry), "{entry} not in {ledger}");
    assert!(listed.contains(&second), "{second} not in {ledger}");
}

#[tokio::test]
async fn top_up_credits_outside_1_to_10_9_or_not_an_integer_is_422() {
    let app = TestApp::spawn().await;
    let t: Tenant = app.tenant(0).await;
    for credits in [
        json!(0),
        json!(-1),
        json!(1_000_000_001),
        json!(i64::MAX),
        json!(1.5),
        json!("5"),
        json!(null),
        json!(true),
        json!([5]),
    ] {
        let r = top_up_raw(&app, &t.account_id, json!({ "credits": credits })).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_error")),
            "credits {credits}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("credits")),
            "credits {credits}: message does not name the field: {body}"
        );
    }
    assert_eq!(app.balance(&t).await, 0, "a refused top-up credited");
    // The bounds themselves are accepted.
    for credits in [1, 1_000_000_000] {
        let r = top_up_raw(&app, &t.account_id, json!({ "credits": credits })).await;
        assert_eq!(r.status(), StatusCode::CREATED, "credits {credits}");
    }
    assert_eq!(app.balance(&t).await, 1_000_000_001);
}

#[tokio::test]
async fn unknown_account_is_404() {
    let app = TestApp::spawn().await;
    for account in ["acc_QQQQQQQQQQQQQQQQQQQQQQ", "not-an-account"] {
        let r = mint(&app, account).await;
        assert_eq!(
            error_code(r).await,
            (StatusCode::NOT_FOUND, "not_found".to_owned()),
            "mint a key for {account}"
        );
        let r = top_up_raw(&app, account, json!({"credits": 5})).await;
        assert_eq!(
            error_code(r).await,
            (StatusCode::NOT_FOUND, "not_found".to_owned()),
            "top up {account}"
        );
    }
}

#[tokio::test]
async fn an_account_name_with_nul_is_422_validation_error() {
    let app = TestApp::spawn().await;
    let r = create_account(&app, json!({"name": "Ac\u{0}me"})).await;
    let (status, code) = error_code(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_error")
    );
}
