//! Prometheus metrics on `ROUGHY_METRICS_BIND` (issue #12): each metric moves when its event
//! happens, scraped before and after.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};

use roughy_tests::media::wav;
use roughy_tests::{Tenant, TestApp};

/// A server exporting metrics on a free loopback port.
async fn app() -> TestApp {
    TestApp::spawn_with(|c| c.http.metrics_bind = Some("127.0.0.1:0".parse().unwrap())).await
}

/// One scrape: every sample by its series (name and labels, as written).
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn of(app: &TestApp) -> Self {
        let url = app.metrics_url.as_deref().expect("metrics are on");
        let r = reqwest::get(url).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = r.text().await.unwrap();
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Self(samples)
    }

    /// The sample's value; 0 when the series does not exist yet.
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// Whether the series is exported at all.
    fn has(&self, series: &str) -> bool {
        self.0.contains_key(series)
    }
}

fn uploads(event: &str) -> String {
    format!("roughy_uploads_total{{event=\"{event}\"}}")
}

fn requests(route: &str, method: &str, status: u16) -> String {
    format!(
        "roughy_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
    )
}

async fn scrape_after<F: std::future::Future<Output = ()>>(
    app: &TestApp,
    f: F,
) -> (Scrape, Scrape) {
    let before = Scrape::of(app).await;
    f.await;
    (before, Scrape::of(app).await)
}

#[tokio::test]
async fn metrics_are_off_unless_a_bind_address_is_set() {
    let app = TestApp::spawn().await;
    assert!(app.metrics_url.is_none());
}

#[tokio::test]
async fn requests_are_counted_by_route_template_method_and_status_and_timed() {
    let app = app().await;
    let t = app.tenant(10).await;
    let (before, after) = scrape_after(&app, async {
        app.project(&t).await;
        let r = app
            .req(Method::GET, "/v1/projects/prj_missing", &t.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = app
            .req(Method::GET, "/nowhere", &t.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    })
    .await;
    for (series, by) in [
        (requests("/v1/projects", "POST", 201), 1.0),
        (requests("/v1/projects/{id}", "GET", 404), 1.0),
        (requests("unmatched", "GET", 404), 1.0),
        (
            "roughy_http_request_duration_seconds_count{route=\"/v1/projects\",method=\"POST\"}"
                .to_owned(),
            1.0,
        ),
    ] {
        assert_eq!(after.get(&series) - before.get(&series), by, "{series}");
    }
}

async fn upload_events(app: &TestApp, t: &Tenant) {
    let project = app.project(t).await;
    // Created and completed: a real WAV, in two PATCHes.
    let bytes = wav(2_000, 8_000);
    let (asset, url) = app.asset(t, &project, bytes.len()).await;
    app.upload_all(t, &url, &bytes, bytes.len() / 2 + 1).await;
    let settled = app.settled(t, asset["id"].as_str().unwrap()).await;
    assert_eq!(settled["state"], "ready");
    // Rejected: not media.
    let (_, url) = app.asset(t, &project, 1_000).await;
    assert_eq!(
        app.patch(t, &url, 0, vec![7; 1_000]).await.status(),
        StatusCode::CONFLICT
    );
    // Terminated.
    let (_, url) = app.asset(t, &project, 1_000).await;
    let r = app.tus(Method::DELETE, &url, &t.key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn upload_steps_bytes_locks_processing_and_credits_are_counted() {
    let app = app().await;
    let t = app.tenant(10).await;
    let size = wav(2_000, 8_000).len() as f64;
    let (before, after) = scrape_after(&app, upload_events(&app, &t)).await;
    let moved = |series: &str| after.get(series) - before.get(series);
    assert_eq!(moved(&uploads("created")), 3.0);
    assert_eq!(moved(&uploads("completed")), 1.0);
    assert_eq!(moved(&uploads("rejected")), 1.0);
    assert_eq!(moved(&uploads("terminated")), 1.0);
    assert_eq!(moved("roughy_upload_bytes_received_total"), size);
    assert_eq!(moved("roughy_upload_patch_bytes_count"), 3.0);
    assert_eq!(
        moved(&requests("/v1/uploads/{id}", "PATCH", 204)),
        2.0,
        "{:?}",
        after
            .0
            .keys()
            .filter(|k| k.contains("PATCH"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        moved("roughy_http_request_duration_seconds_count{route=\"/v1/uploads/{id}\",method=\"PATCH\"}"),
        3.0
    );
    assert_eq!(
        after.get("roughy_upload_locks_held"),
        0.0,
        "every lock let go"
    );
    assert_eq!(
        moved("roughy_processing_duration_seconds_count{format=\"wav\",outcome=\"ready\"}"),
        1.0
    );
    assert_eq!(moved("roughy_credits_charged_total"), 1.0);
    // Nothing waits any more.
    assert_eq!(after.get("roughy_jobs_queued"), 0.0);
    assert_eq!(after.get("roughy_uploads_active"), 0.0);
    assert_eq!(after.get("roughy_purge_outbox_depth"), 0.0);
}

#[tokio::test]
async fn backlog_gauges_follow_active_uploads_and_reaped_ones_are_counted() {
    let app = app().await;
    let t = app.tenant(10).await;
    let project = app.project(&t).await;
    let (before, after) = scrape_after(&app, async {
        app.asset(&t, &project, 1_000).await;
        app.asset(&t, &project, 1_000).await;
    })
    .await;
    assert_eq!(
        after.get("roughy_uploads_active") - before.get("roughy_uploads_active"),
        2.0
    );
    // Idle past the upload TTL (48 h): the reaper takes both.
    let (before, after) = scrape_after(&app, async {
        app.clock.advance(time::Duration::hours(49));
        app.wait_reaper().await;
    })
    .await;
    assert_eq!(
        after.get(&uploads("reaped")) - before.get(&uploads("reaped")),
        2.0
    );
    assert_eq!(after.get("roughy_uploads_active"), 0.0);
    // The oldest job's age is exported even with no job.
    assert!(after.has("roughy_jobs_oldest_age_seconds"));
    if app.database_url.is_some() {
        assert!(after.get("roughy_db_pool_max_connections") >= 1.0);
        assert!(after.has("roughy_db_pool_connections_in_use"));
        assert!(after.has("roughy_db_pool_waiters"));
    }
}

#[tokio::test]
async fn credits_charged_count_the_activations_of_a_top_up() {
    let app = app().await;
    let t = app.tenant(1).await;
    let project = app.project(&t).await;
    // Two minutes started, one credit: the asset waits for payment, uncharged.
    let (before, after) = scrape_after(&app, async {
        let asset = app.ingest(&t, &project, &wav(61_000, 8_000)).await;
        assert_eq!(asset["state"], "pending_payment");
    })
    .await;
    let outcome =
        "roughy_processing_duration_seconds_count{format=\"wav\",outcome=\"pending_payment\"}";
    assert_eq!(after.get(outcome) - before.get(outcome), 1.0);
    assert_eq!(
        after.get("roughy_credits_charged_total"),
        before.get("roughy_credits_charged_total")
    );
    let (before, after) = scrape_after(&app, async {
        app.top_up(&t.account_id, 5).await;
    })
    .await;
    assert_eq!(
        after.get("roughy_credits_charged_total") - before.get("roughy_credits_charged_total"),
        2.0
    );
}
