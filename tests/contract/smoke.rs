use reqwest::{Method, StatusCode};
use roughy_tests::media::wav;
use roughy_tests::TestApp;

#[tokio::test]
async fn quickstart_flow_reaches_ready_and_downloads_the_same_bytes() {
    let app = TestApp::spawn().await;
    let t = app.tenant(100).await;
    let project = app.project(&t).await;
    let bytes = wav(2_500, 8_000);
    let asset = app.ingest(&t, &project, &bytes).await;
    assert_eq!(asset["state"], "ready", "{asset}");
    assert_eq!(asset["duration_seconds"], "2.500");
    assert_eq!(asset["type"], "audio");
    assert_eq!(asset["content_type"], "audio/wav");
    let url = asset["download_url"].as_str().unwrap();
    let got = app.client.get(url).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);
    assert_eq!(app.balance(&t).await, 99);
    let _ = Method::GET;
}
