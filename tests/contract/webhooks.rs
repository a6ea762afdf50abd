//! Contract rules: webhooks (issue #12). An endpoint registered with `POST /v1/webhooks` gets
//! each subscribed event once per state change, signed `Roughy-Signature: t=…,v1=<hex
//! HMAC-SHA256 of "t.body">`, retried after a 5xx or no answer; its deliveries and attempts are
//! listable. Every test receiver listens on 127.0.0.1 (the test config allows private
//! destinations; one test checks the refusal without it).

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use roughy_tests::media::wav;
use roughy_tests::{error_code, header_str, Tenant, TestApp};
use roughy_webhooks::testing::{Received, Receiver};

/// How long a delivery may take to arrive (the sender polls every 500 ms).
const ARRIVAL: Duration = Duration::from_secs(15);

async fn register(app: &TestApp, t: &Tenant, url: &str, events: &[&str]) -> Value {
    let r = app
        .req(Method::POST, "/v1/webhooks", &t.key)
        .json(&json!({"url": url, "events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

/// Checks the signature the way a receiver would: HMAC-SHA256 keyed by the secret over
/// `"<t>.<raw body>"`, hex, compared with `v1`.
fn verify(secret: &str, got: &Received) -> bool {
    let header = got.header("roughy-signature").unwrap();
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => v1 = Some(v.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&got.body);
    hex::encode(mac.finalize().into_bytes()) == v1
}

fn body(got: &Received) -> Value {
    serde_json::from_slice(&got.body).unwrap()
}

async fn deliveries(app: &TestApp, t: &Tenant, webhook: &str) -> Vec<Value> {
    let list = app
        .get_json(t, &format!("/v1/webhooks/{webhook}/deliveries"))
        .await;
    list["data"].as_array().unwrap().clone()
}

/// Waits until the endpoint's only delivery has `attempts` attempts recorded.
async fn attempted(app: &TestApp, t: &Tenant, webhook: &str, attempts: usize) -> Value {
    let deadline = tokio::time::Instant::now() + ARRIVAL;
    loop {
        let list = deliveries(app, t, webhook).await;
        if list.len() == 1 && list[0]["attempts"].as_array().unwrap().len() >= attempts {
            return list[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_registration_shows_its_secret_once_and_is_the_callers_alone() {
    let app = TestApp::spawn().await;
    let t = app.tenant(0).await;
    let other = app.tenant(0).await;
    let receiver = Receiver::start().await;
    let r = app
        .req(Method::POST, "/v1/webhooks", &t.key)
        .json(
            &json!({"url": receiver.url, "events": ["asset.ready", "asset.failed", "asset.ready"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = header_str(&r, "location");
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("whk_"));
    assert!(location.ends_with(&format!("/v1/webhooks/{id}")));
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["url"], receiver.url.as_str());
    assert_eq!(created["events"], json!(["asset.ready", "asset.failed"]));

    let got = app.get_json(&t, &format!("/v1/webhooks/{id}")).await;
    assert!(got.get("secret").is_none(), "{got}");
    assert_eq!(got["events"], created["events"]);
    let list = app.get_json(&t, "/v1/webhooks").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(list["data"][0].get("secret").is_none());

    // Another account sees none of it.
    let theirs = app.get_json(&other, "/v1/webhooks").await;
    assert_eq!(theirs["data"], json!([]));
    for (method, path) in [
        (Method::GET, format!("/v1/webhooks/{id}")),
        (Method::DELETE, format!("/v1/webhooks/{id}")),
        (Method::GET, format!("/v1/webhooks/{id}/deliveries")),
    ] {
        let r = app.req(method, &path, &other.key).send().await.unwrap();
        assert_eq!(
            error_code(r).await,
            (StatusCode::NOT_FOUND, "not_found".into())
        );
    }

    let r = app
        .req(Method::DELETE, &format!("/v1/webhooks/{id}"), &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .req(Method::GET, &format!("/v1/webhooks/{id}"), &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_registrations_are_422_validation_error() {
    let app = TestApp::spawn().await;
    let t = app.tenant(0).await;
    for body in [
        json!({"url": "ftp://example.com/", "events": ["asset.ready"]}),
        json!({"url": "https://user:pw@example.com/", "events": ["asset.ready"]}),
        json!({"url": "http://127.0.0.1:9/", "events": []}),
        json!({"url": "http://127.0.0.1:9/", "events": ["asset.created"]}),
        json!({"url": "https://does-not-resolve.invalid/", "events": ["asset.ready"]}),
    ] {
        let r = app
            .req(Method::POST, "/v1/webhooks", &t.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(r).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error".into()),
            "{body}"
        );
    }
    let r = app
        .req(Method::POST, "/v1/webhooks", &t.key)
        .json(&json!({"url": "http://127.0.0.1:9/"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
}

#[tokio::test]
async fn the_21st_endpoint_of_an_account_is_409_too_many_webhooks_until_one_is_deleted() {
    let app = TestApp::spawn().await;
    let t = app.tenant(0).await;
    let register = || async {
        app.req(Method::POST, "/v1/webhooks", &t.key)
            .json(&json!({"url": "http://127.0.0.1:9/hook", "events": ["asset.ready"]}))
            .send()
            .await
            .unwrap()
    };
    let mut first = None;
    for _ in 0..20 {
        let r = register().await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        first.get_or_insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        error_code(register().await).await,
        (StatusCode::CONFLICT, "too_many_webhooks".into())
    );
    // Another account is not counted against this one.
    let other = app.tenant(0).await;
    let r = app
        .req(Method::POST, "/v1/webhooks", &other.key)
        .json(&json!({"url": "http://127.0.0.1:9/hook", "events": ["asset.ready"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let first = first.unwrap();
    let r = app
        .req(Method::DELETE, &format!("/v1/webhooks/{first}"), &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(register().await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn private_loopback_and_link_local_destinations_are_refused_unless_allowed() {
    let app = TestApp::spawn_with(|c| c.webhooks.transport.allow_private = false).await;
    let t = app.tenant(0).await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost:8080/hook",
        "http://10.0.0.7/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let r = app
            .req(Method::POST, "/v1/webhooks", &t.key)
            .json(&json!({"url": url, "events": ["asset.ready"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "validation_error", "{url}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("private"),
            "{url}: {body}"
        );
    }
}

#[tokio::test]
async fn a_ready_asset_is_delivered_once_signed_with_the_asset_as_get_shows_it() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let receiver = Receiver::start().await;
    let hook = register(&app, &t, &receiver.url, &["asset.ready"]).await;
    let secret = hook["secret"].as_str().unwrap();
    let project = app.project(&t).await;
    let ready = app.ingest(&t, &project, &wav(2_500, 8_000)).await;
    assert_eq!(ready["state"], "ready");

    let got = receiver.wait_for(1, ARRIVAL).await;
    let delivery = &got[0];
    assert_eq!(delivery.request_line, "POST /hook");
    assert!(verify(secret, delivery), "the signature verifies");
    assert!(!verify("whsec_other", delivery));
    assert_eq!(delivery.header("content-type"), Some("application/json"));
    let event = body(delivery);
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(delivery.header("roughy-event-id"), event["id"].as_str());
    assert_eq!(delivery.header("roughy-event-type"), Some("asset.ready"));
    assert_eq!(event["type"], "asset.ready");
    assert!(event["created_at"].as_str().unwrap().ends_with('Z'));
    // The asset as GET /v1/assets/{id} shows it, without download_url.
    let mut shown = app.get_asset(&t, ready["id"].as_str().unwrap()).await;
    shown.as_object_mut().unwrap().remove("download_url");
    assert_eq!(event["asset"], shown);
    // The signature's time is the sending time, in unix seconds.
    let t_value: i64 = delivery
        .header("roughy-signature")
        .unwrap()
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap()
        .parse()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - t_value).abs() < 120, "t={t_value}, now={now}");

    // Once: nothing more arrives, and the delivery is listed as delivered after one attempt.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 1);
    let listed = attempted(&app, &t, hook["id"].as_str().unwrap(), 1).await;
    assert_eq!(listed["state"], "delivered");
    assert_eq!(listed["event_id"], event["id"]);
    assert_eq!(listed["event_type"], "asset.ready");
    assert_eq!(listed["asset_id"], ready["id"]);
    assert_eq!(listed["next_attempt_at"], Value::Null);
    assert_eq!(listed["attempts"][0]["status"], 204);
    assert_eq!(listed["attempts"][0]["error"], Value::Null);
}

#[tokio::test]
async fn a_receiver_that_answers_500_gets_the_same_event_again_after_the_backoff() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let receiver = Receiver::start().await;
    receiver.answer_next(&[500]);
    let hook = register(&app, &t, &receiver.url, &["asset.ready"]).await;
    let webhook = hook["id"].as_str().unwrap();
    let project = app.project(&t).await;
    app.ingest(&t, &project, &wav(1_000, 8_000)).await;

    receiver.wait_for(1, ARRIVAL).await;
    let listed = attempted(&app, &t, webhook, 1).await;
    assert_eq!(listed["state"], "pending");
    assert_eq!(listed["attempts"][0]["status"], 500);
    assert!(listed["next_attempt_at"].is_string());
    // Not before the backoff (30 s on the server's clock).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 1);
    app.clock.advance(time::Duration::seconds(31));
    let got = receiver.wait_for(2, ARRIVAL).await;
    assert_eq!(got[0].body, got[1].body, "the same event, byte for byte");
    assert!(verify(hook["secret"].as_str().unwrap(), &got[1]));
    let listed = attempted(&app, &t, webhook, 2).await;
    assert_eq!(listed["state"], "delivered");
    let statuses: Vec<&Value> = listed["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [&json!(500), &json!(204)]);
}

#[tokio::test]
async fn a_receiver_that_was_down_gets_the_event_once_it_is_up() {
    let app = TestApp::spawn().await;
    let t = app.tenant(1).await;
    // A port with nothing listening on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let hook = register(&app, &t, &url, &["asset.deleted"]).await;
    let webhook = hook["id"].as_str().unwrap();
    let project = app.project(&t).await;
    let (asset, _) = app.asset(&t, &project, 1_000).await;
    let id = asset["id"].as_str().unwrap();
    let r = app
        .req(Method::DELETE, &format!("/v1/assets/{id}"), &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let listed = attempted(&app, &t, webhook, 1).await;
    assert_eq!(listed["state"], "pending");
    assert_eq!(listed["attempts"][0]["status"], Value::Null);
    assert!(listed["attempts"][0]["error"].as_str().unwrap().len() > 3);

    let receiver = Receiver::start_on(port).await;
    app.clock.advance(time::Duration::seconds(31));
    let got = receiver.wait_for(1, ARRIVAL).await;
    let event = body(&got[0]);
    assert_eq!(event["type"], "asset.deleted");
    assert_eq!(event["asset"]["id"], id);
    // The receiver answers before the worker records the answer: wait for the record.
    let deadline = tokio::time::Instant::now() + ARRIVAL;
    loop {
        let listed = attempted(&app, &t, webhook, 2).await;
        if listed["state"] == "delivered" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_state_change_is_announced_only_to_endpoints_subscribed_to_it() {
    let app = TestApp::spawn().await;
    // One credit: a create is allowed, a 61 s file (2 credits) waits for payment.
    let t = app.tenant(1).await;
    let everything = Receiver::start().await;
    let readiness = Receiver::start().await;
    register(
        &app,
        &t,
        &everything.url,
        &[
            "asset.ready",
            "asset.pending_payment",
            "asset.failed",
            "asset.deleted",
            "upload.expired",
            "upload.rejected",
        ],
    )
    .await;
    register(&app, &t, &readiness.url, &["asset.ready"]).await;
    let project = app.project(&t).await;

    // Short of credits: pending_payment; a top-up: ready.
    let media = wav(61_000, 8_000);
    let (asset, url) = app.asset(&t, &project, media.len()).await;
    let id = asset["id"].as_str().unwrap().to_owned();
    app.upload_all(&t, &url, &media, 1 << 20).await;
    assert_eq!(app.settled(&t, &id).await["state"], "pending_payment");
    app.top_up(&t.account_id, 5).await;
    // A first chunk that is not media: rejected.
    let (rejected, url) = app.asset(&t, &project, 1_000).await;
    let r = app.patch(&t, &url, 0, vec![b'x'; 100]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    let got = everything.wait_for(3, ARRIVAL).await;
    let kinds: Vec<(String, String)> = got
        .iter()
        .map(body)
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["asset"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("asset.pending_payment".to_owned(), id.clone()),
        ("asset.ready".to_owned(), id.clone()),
        (
            "upload.rejected".to_owned(),
            rejected["id"].as_str().unwrap().to_owned(),
        ),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
    let ready = readiness.wait_for(1, ARRIVAL).await;
    assert_eq!(body(&ready[0])["type"], "asset.ready");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(everything.received().len(), 3, "once per change");
    assert_eq!(readiness.received().len(), 1, "only what it subscribed to");
}
