//! Contract rules: billing and the credit ledger (CONTRACT §7).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use roughy_tests::media::wav;
use roughy_tests::{error_code, Tenant, TestApp};

/// 8 kHz mono: small files, exact durations.
const RATE: u32 = 8_000;

/// The whole ledger, newest first, following the cursor.
async fn ledger(app: &TestApp, t: &Tenant) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            None => "/v1/credits/ledger?limit=100".to_owned(),
            Some(c) => format!("/v1/credits/ledger?limit=100&cursor={c}"),
        };
        let r = app.req(Method::GET, &path, &t.key).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let page: Value = r.json().await.unwrap();
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            None => return all,
            Some(c) => cursor = Some(c.to_owned()),
        }
    }
    panic!("the ledger does not end");
}

fn charges_of<'a>(entries: &'a [Value], asset_id: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| e["kind"] == "asset_charge" && e["asset_id"] == asset_id)
        .collect()
}

fn ledger_sum(entries: &[Value]) -> i64 {
    entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum()
}

async fn assert_balance_is_ledger_sum(app: &TestApp, t: &Tenant, when: &str) {
    let entries = ledger(app, t).await;
    let balance = app.balance(t).await;
    assert_eq!(
        balance,
        ledger_sum(&entries),
        "{when}: balance {balance} is not the sum of the ledger {entries:?}"
    );
    assert!(balance >= 0, "{when}: negative balance {balance}");
}

/// Creates an asset for `bytes` (needs a positive balance), returns `(id, upload url)`.
async fn open(app: &TestApp, t: &Tenant, project: &str, bytes: &[u8]) -> (String, String) {
    let (asset, url) = app.asset(t, project, bytes.len()).await;
    (asset["id"].as_str().unwrap().to_owned(), url)
}

/// Uploads and settles an opened asset.
async fn finish(app: &TestApp, t: &Tenant, id: &str, url: &str, bytes: &[u8]) -> Value {
    app.upload_all(t, url, bytes, bytes.len()).await;
    app.settled(t, id).await
}

/// Creates, uploads in one PATCH, and settles an asset (billing, not chunking, is under test).
async fn ingest_one(app: &TestApp, t: &Tenant, project: &str, bytes: &[u8]) -> Value {
    let (id, url) = open(app, t, project, bytes).await;
    finish(app, t, &id, &url, bytes).await
}

async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

#[tokio::test]
async fn charge_is_ceil_minutes_and_at_least_one() {
    let app = TestApp::spawn().await;
    let t = app.tenant(20).await;
    let project = app.project(&t).await;
    let cases = [
        (61_000, "61.000", 2),
        (500, "0.500", 1),
        (60_000, "60.000", 1),
        (120_001, "120.001", 3),
    ];
    let mut balance = 20;
    for (millis, duration, charge) in cases {
        let asset = ingest_one(&app, &t, &project, &wav(millis, RATE)).await;
        assert_eq!(asset["state"], "ready", "{asset}");
        assert_eq!(asset["duration_seconds"], duration);
        balance -= charge;
        assert_eq!(
            app.balance(&t).await,
            balance,
            "a {duration} s asset must cost {charge}"
        );
        let entries = ledger(&app, &t).await;
        let charges = charges_of(&entries, asset["id"].as_str().unwrap());
        assert_eq!(charges.len(), 1, "{entries:?}");
        assert_eq!(charges[0]["amount"], -charge, "{duration} s");
    }
}

#[tokio::test]
async fn an_asset_is_charged_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant(5).await;
    let project = app.project(&t).await;
    let asset = ingest_one(&app, &t, &project, &wav(61_000, RATE)).await;
    let id = asset["id"].as_str().unwrap();
    assert_eq!(asset["state"], "ready");
    for _ in 0..3 {
        assert_eq!(app.get_asset(&t, id).await["state"], "ready");
    }
    app.top_up(&t.account_id, 10).await;
    for _ in 0..3 {
        assert_eq!(app.get_asset(&t, id).await["state"], "ready");
    }
    // Listing it does not charge it either.
    let r = app
        .req(Method::GET, "/v1/assets?state=ready", &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let entries = ledger(&app, &t).await;
    assert_eq!(charges_of(&entries, id).len(), 1, "{entries:?}");
    assert_eq!(app.balance(&t).await, 5 - 2 + 10);
    assert_eq!(entries.len(), 3, "{entries:?}");
}

#[tokio::test]
async fn short_balance_leaves_the_asset_pending_payment_uncharged() {
    let app = TestApp::spawn().await;
    let t = app.tenant(1).await;
    let project = app.project(&t).await;
    let bytes = wav(61_000, RATE);
    let asset = ingest_one(&app, &t, &project, &bytes).await;
    let id = asset["id"].as_str().unwrap();
    assert_eq!(asset["state"], "pending_payment", "{asset}");
    assert_eq!(asset["duration_seconds"], "61.000");
    assert_eq!(asset["download_url"], Value::Null);
    assert_eq!(asset["cuttable"], false);
    assert_eq!(asset["upload_url"], Value::Null);
    assert_eq!(asset["size_bytes"], bytes.len());
    assert_eq!(asset["error_code"], Value::Null);
    assert_eq!(app.balance(&t).await, 1);
    let entries = ledger(&app, &t).await;
    assert!(charges_of(&entries, id).is_empty(), "{entries:?}");
    assert_eq!(entries.len(), 1);
    // It stays so (bytes kept, nothing charged) while nobody tops up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = app.get_asset(&t, id).await;
    assert_eq!(again["state"], "pending_payment");
    assert_eq!(app.balance(&t).await, 1);
    // Listed under its state.
    let list: Value = app
        .req(Method::GET, "/v1/assets?state=pending_payment", &t.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], id);
}

#[tokio::test]
async fn top_up_activates_pending_payment_assets_oldest_first_skipping_uncoverable() {
    let app = TestApp::spawn().await;
    let t = app.tenant(1).await;
    let project = app.project(&t).await;
    let (a_bytes, b_bytes, c_bytes, d_bytes) = (
        wav(61_000, RATE),  // costs 2
        wav(121_000, RATE), // costs 3
        wav(500, RATE),     // costs 1
        wav(500, RATE),     // costs 1
    );
    // All four are created while the balance is positive; A is the oldest.
    let (a, a_url) = open(&app, &t, &project, &a_bytes).await;
    tick().await;
    let (b, b_url) = open(&app, &t, &project, &b_bytes).await;
    tick().await;
    let (c, c_url) = open(&app, &t, &project, &c_bytes).await;
    tick().await;
    let (d, d_url) = open(&app, &t, &project, &d_bytes).await;
    // D takes the only credit; A, B and C then wait for payment.
    assert_eq!(
        finish(&app, &t, &d, &d_url, &d_bytes).await["state"],
        "ready"
    );
    assert_eq!(app.balance(&t).await, 0);
    for (id, url, bytes) in [
        (&a, &a_url, &a_bytes),
        (&b, &b_url, &b_bytes),
        (&c, &c_url, &c_bytes),
    ] {
        let settled = finish(&app, &t, id, url, bytes).await;
        assert_eq!(settled["state"], "pending_payment", "{settled}");
    }
    // 4 credits, oldest first: A (2) → 2 left; B (3) not covered, skipped; C (1) → 1 left.
    // (Newest first would activate C and B; stopping at B would leave C waiting.)
    let entry = app.top_up(&t.account_id, 4).await;
    assert_eq!(entry["kind"], "top_up");
    assert_eq!(entry["amount"], 4);
    assert_eq!(entry["balance_after"], 4);
    // Activation happens in the top-up's transaction: no waiting needed.
    assert_eq!(app.get_asset(&t, &a).await["state"], "ready");
    assert_eq!(app.get_asset(&t, &b).await["state"], "pending_payment");
    assert_eq!(app.get_asset(&t, &c).await["state"], "ready");
    assert!(app.get_asset(&t, &a).await["download_url"].is_string());
    assert_eq!(app.get_asset(&t, &c).await["cuttable"], true);
    assert_eq!(app.balance(&t).await, 1);
    let entries = ledger(&app, &t).await;
    assert_eq!(charges_of(&entries, &a)[0]["amount"], -2);
    assert_eq!(charges_of(&entries, &c)[0]["amount"], -1);
    assert!(charges_of(&entries, &b).is_empty());
    // A is charged before C: balance_after 2 then 1.
    assert_eq!(charges_of(&entries, &a)[0]["balance_after"], 2);
    assert_eq!(charges_of(&entries, &c)[0]["balance_after"], 1);
    // Another top-up covers B.
    app.top_up(&t.account_id, 2).await;
    assert_eq!(app.get_asset(&t, &b).await["state"], "ready");
    assert_eq!(app.balance(&t).await, 0);
    let entries = ledger(&app, &t).await;
    assert_eq!(charges_of(&entries, &b).len(), 1);
    assert_eq!(charges_of(&entries, &b)[0]["amount"], -3);
    for id in [&a, &c, &d] {
        assert_eq!(charges_of(&entries, id).len(), 1, "{id} charged twice");
    }
}

#[tokio::test]
async fn balance_is_always_the_sum_of_ledger_amounts() {
    let app = TestApp::spawn().await;
    let t = app.tenant(3).await;
    assert_balance_is_ledger_sum(&app, &t, "after the first top-up").await;
    let project = app.project(&t).await;
    ingest_one(&app, &t, &project, &wav(500, RATE)).await;
    assert_balance_is_ledger_sum(&app, &t, "after a charge").await;
    let pending = ingest_one(&app, &t, &project, &wav(180_500, RATE)).await; // costs 4
    assert_eq!(pending["state"], "pending_payment");
    assert_balance_is_ledger_sum(&app, &t, "after a pending payment").await;
    app.top_up(&t.account_id, 1).await;
    assert_balance_is_ledger_sum(&app, &t, "after a top-up that activates nothing").await;
    assert_eq!(app.balance(&t).await, 3);
    app.top_up(&t.account_id, 7).await;
    assert_balance_is_ledger_sum(&app, &t, "after an activating top-up").await;
    assert_eq!(app.balance(&t).await, 6);
    let id = pending["id"].as_str().unwrap();
    assert_eq!(app.get_asset(&t, id).await["state"], "ready");
    // A failed asset is never charged.
    let mut broken = wav(2_000, RATE);
    broken.truncate(60);
    broken.extend(std::iter::repeat_n(0xAB, 200));
    let (asset, url) = app.asset(&t, &project, broken.len()).await;
    let r = app.patch(&t, &url, 0, broken).await;
    if r.status() == StatusCode::NO_CONTENT {
        let settled = app.settled(&t, asset["id"].as_str().unwrap()).await;
        assert_ne!(settled["state"], "ready", "{settled}");
    }
    assert_balance_is_ledger_sum(&app, &t, "after a broken upload").await;
    assert_eq!(app.balance(&t).await, 6);
    // Each entry's balance_after, oldest first, follows from the amounts.
    let mut entries = ledger(&app, &t).await;
    entries.reverse();
    let mut running = 0;
    let mut seen_after: Vec<i64> = Vec::new();
    for e in &entries {
        running += e["amount"].as_i64().unwrap();
        seen_after.push(e["balance_after"].as_i64().unwrap());
        assert!(e["balance_after"].as_i64().unwrap() >= 0, "{e}");
    }
    assert_eq!(running, 6);
    assert!(
        seen_after.contains(&10),
        "the activating top-up's balance_after: {seen_after:?}"
    );
}

#[tokio::test]
async fn credits_and_ledger_have_the_documented_shape() {
    let app = TestApp::spawn().await;
    let t = app.tenant(5).await;
    let project = app.project(&t).await;
    tick().await;
    let asset = ingest_one(&app, &t, &project, &wav(500, RATE)).await;
    let asset_id = asset["id"].as_str().unwrap();
    tick().await;
    app.top_up(&t.account_id, 2).await;

    let r = app
        .req(Method::GET, "/v1/credits", &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let credits: Value = r.json().await.unwrap();
    assert_eq!(credits, json!({"balance": 6}));

    let r = app
        .req(Method::GET, "/v1/credits/ledger", &t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["next_cursor"], Value::Null);
    let entries = page["data"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{page}");
    for e in entries {
        let obj = e.as_object().unwrap();
        for key in [
            "id",
            "kind",
            "amount",
            "balance_after",
            "asset_id",
            "created_at",
        ] {
            assert!(obj.contains_key(key), "{key} missing: {e}");
        }
        assert!(e["id"].as_str().unwrap().starts_with("led_"), "{e}");
        assert!(e["amount"].is_i64(), "{e}");
        assert!(e["balance_after"].is_i64(), "{e}");
        assert!(e["created_at"].is_string(), "{e}");
    }
    // Newest first: the second top-up, the charge, the first top-up.
    let expected = [
        ("top_up", 2, 6, Value::Null),
        ("asset_charge", -1, 4, json!(asset_id)),
        ("top_up", 5, 5, Value::Null),
    ];
    for (e, (kind, amount, after, asset)) in entries.iter().zip(expected) {
        assert_eq!(e["kind"], kind, "{page}");
        assert_eq!(e["amount"], amount, "{page}");
        assert_eq!(e["balance_after"], after, "{page}");
        assert_eq!(e["asset_id"], asset, "{page}");
    }
    let stamps: Vec<&str> = entries
        .iter()
        .map(|e| e["created_at"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] > w[1]), "{stamps:?}");
}

#[tokio::test]
async fn create_asset_with_zero_balance_is_402_insufficient_credits_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let broke = app.tenant(0).await;
    let project = app.project(&broke).await;
    let r = app
        .create_asset_raw(&broke, json!({"project_id": project, "size_bytes": 1000}))
        .await;
    assert!(!r.headers().contains_key("location"));
    assert_eq!(
        error_code(r).await,
        (
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_credits".to_owned()
        )
    );
    // A balance spent down to exactly 0 is refused too.
    let spent = app.tenant(1).await;
    let p2 = app.project(&spent).await;
    ingest_one(&app, &spent, &p2, &wav(500, RATE)).await;
    assert_eq!(app.balance(&spent).await, 0);
    let r = app
        .create_asset_raw(&spent, json!({"project_id": p2, "size_bytes": 1000}))
        .await;
    assert_eq!(
        error_code(r).await,
        (
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_credits".to_owned()
        )
    );
    // Nothing was created: no asset listed, no upload staged, no ledger entry.
    for (t, expected) in [(&broke, 0), (&spent, 1)] {
        let list: Value = app
            .req(Method::GET, "/v1/assets", &t.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["data"].as_array().unwrap().len(), expected);
        let pending: Value = app
            .req(Method::GET, "/v1/assets?state=pending_upload", &t.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(pending["data"], json!([]));
    }
    assert!(ledger(&app, &broke).await.is_empty());
    assert_eq!(ledger(&app, &spent).await.len(), 2);
}
