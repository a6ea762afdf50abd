#![doc = include_str!("../README.md")]

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

use roughy_app::ports::{BacklogProbe, Metrics, ProcessingOutcome, UploadEvent};
use roughy_domain::MediaFormat;

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessingLabels {
    format: String,
    outcome: String,
}

/// Histogram buckets, as a family constructor.
#[derive(Clone, Copy)]
struct Buckets {
    start: f64,
    factor: f64,
    count: u16,
}

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(self.start, self.factor, self.count))
    }
}

/// Request durations: 1 ms to about 33 s.
const SECONDS: Buckets = Buckets {
    start: 0.001,
    factor: 2.0,
    count: 16,
};
/// Processing durations: 10 ms to about 10 min.
const PROCESSING_SECONDS: Buckets = Buckets {
    start: 0.01,
    factor: 2.0,
    count: 17,
};

/// Every metric of one process, registered once; `render` writes the Prometheus text format.
pub struct PrometheusMetrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, Buckets>,
    patch_bytes: Histogram,
    bytes_received: Counter,
    uploads: Family<EventLabels, Counter>,
    locks_held: Gauge,
    processing: Family<ProcessingLabels, Histogram, Buckets>,
    credits_charged: Counter,
    active_uploads: Gauge,
    queued_jobs: Gauge,
    oldest_job_age: Gauge<f64, AtomicU64>,
    pending_purges: Gauge,
    pending_deliveries: Gauge,
    pool_max: Gauge,
    pool_size: Gauge,
    pool_in_use: Gauge,
    pool_waiting: Gauge,
    scrape_errors: Counter,
}

impl fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusMetrics").finish_non_exhaustive()
    }
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl PrometheusMetrics {
    /// Every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("roughy");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        let http_duration = Family::new_with_constructor(SECONDS);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (the body included), by route template and method",
            http_duration.clone(),
        );
        let patch_bytes = Histogram::new(exponential_buckets(1024.0, 4.0, 12));
        registry.register(
            "upload_patch_bytes",
            "Declared body size (Content-Length) of TUS PATCH requests",
            patch_bytes.clone(),
        );
        let bytes_received = Counter::default();
        registry.register(
            "upload_bytes_received",
            "Upload bytes stored durably (acknowledged offsets)",
            bytes_received.clone(),
        );
        let uploads = Family::<EventLabels, Counter>::default();
        registry.register(
            "uploads",
            "Uploads by event: created, completed, rejected, terminated, reaped",
            uploads.clone(),
        );
        for event in UploadEvent::ALL {
            // Listed at zero from the start, so a rate over the first event is right.
            drop(uploads.get_or_create(&EventLabels {
                event: event.as_str().to_owned(),
            }));
        }
        let locks_held = Gauge::default();
        registry.register(
            "upload_locks_held",
            "Upload locks held by PATCH requests of this process",
            locks_held.clone(),
        );
        let processing = Family::new_with_constructor(PROCESSING_SECONDS);
        registry.register(
            "processing_duration_seconds",
            "Processing jobs by detected format and outcome, and how long each took",
            processing.clone(),
        );
        let credits_charged = Counter::default();
        registry.register(
            "credits_charged",
            "Credits charged by this process (processing, and top-ups activating waiting assets)",
            credits_charged.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let active_uploads = gauge(
            &mut registry,
            "uploads_active",
            "Uploads created and not yet complete (the whole service)",
        );
        let queued_jobs = gauge(
            &mut registry,
            "jobs_queued",
            "Processing jobs queued or running (the whole service)",
        );
        let oldest_job_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "jobs_oldest_age_seconds",
            "Age of the oldest processing job since it became available (0 when none)",
            oldest_job_age.clone(),
        );
        let pending_purges = gauge(
            &mut registry,
            "purge_outbox_depth",
            "Deleted assets whose stored bytes are still to purge (the whole service)",
        );
        let pending_deliveries = gauge(
            &mut registry,
            "webhook_deliveries_pending",
            "Webhook deliveries waiting for an attempt or a retry (the whole service)",
        );
        let pool_max = gauge(
            &mut registry,
            "db_pool_max_connections",
            "Database pool: the most connections this process opens",
        );
        let pool_size = gauge(
            &mut registry,
            "db_pool_connections",
            "Database pool: connections open",
        );
        let pool_in_use = gauge(
            &mut registry,
            "db_pool_connections_in_use",
            "Database pool: connections handed out",
        );
        let pool_waiting = gauge(
            &mut registry,
            "db_pool_waiters",
            "Database pool: requests waiting for a connection",
        );
        let scrape_errors = Counter::default();
        registry.register(
            "metrics_scrape_errors",
            "Scrapes whose backlog query failed (the backlog gauges kept their last values)",
            scrape_errors.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            patch_bytes,
            bytes_received,
            uploads,
            locks_held,
            processing,
            credits_charged,
            active_uploads,
            queued_jobs,
            oldest_job_age,
            pending_purges,
            pending_deliveries,
            pool_max,
            pool_size,
            pool_in_use,
            pool_waiting,
            scrape_errors,
        }
    }

    /// Counts one answered request.
    fn observe_request(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.as_str().to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.as_str().to_owned(),
            })
            .observe(seconds);
    }

    /// Samples the backlog and the pool from `probe`, then writes every metric in the
    /// Prometheus text format.
    pub async fn render(&self, probe: &dyn BacklogProbe) -> String {
        match probe.backlog().await {
            Ok(backlog) => {
                set(&self.active_uploads, backlog.active_uploads);
                set(&self.queued_jobs, backlog.queued_jobs);
                set(&self.pending_purges, backlog.pending_purges);
                set(&self.pending_deliveries, backlog.pending_deliveries);
                let age = backlog.oldest_job_at.map_or(0.0, |at| {
                    (OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0)
                });
                self.oldest_job_age.set(age);
            }
            Err(e) => {
                self.scrape_errors.inc();
                tracing::warn!(error = %e, "metrics: the backlog query failed");
            }
        }
        if let Some(pool) = probe.pool() {
            set(&self.pool_max, pool.max_size);
            set(&self.pool_size, pool.size);
            set(&self.pool_in_use, pool.in_use);
            set(&self.pool_waiting, pool.waiting);
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "metrics: encoding failed");
        }
        text
    }
}

/// Sets a gauge to a count (saturating at `i64::MAX`).
fn set(gauge: &Gauge, count: u64) {
    gauge.set(i64::try_from(count).unwrap_or(i64::MAX));
}

impl Metrics for PrometheusMetrics {
    fn upload(&self, event: UploadEvent, count: u64) {
        self.uploads
            .get_or_create(&EventLabels {
                event: event.as_str().to_owned(),
            })
            .inc_by(count);
    }

    fn bytes_received(&self, bytes: u64) {
        self.bytes_received.inc_by(bytes);
    }

    fn upload_lock_held(&self, delta: i64) {
        self.locks_held.inc_by(delta);
    }

    fn processed(&self, format: MediaFormat, outcome: ProcessingOutcome, seconds: f64) {
        self.processing
            .get_or_create(&ProcessingLabels {
                format: format.extension().to_owned(),
                outcome: outcome.as_str().to_owned(),
            })
            .observe(seconds);
    }

    fn credits_charged(&self, credits: u64) {
        self.credits_charged.inc_by(credits);
    }
}

/// The HTTP middleware: counts every request by route template (`/v1/assets/{id}`, or
/// `unmatched`), method and status, times it, and records the declared size of PATCHes.
/// Wrap the app with `actix_web::middleware::from_fn(move |req, next| observe(metrics.clone(), req, next))`.
///
/// # Errors
/// Whatever the inner service answers as an error (passed through, counted as its status).
pub async fn observe(
    metrics: Arc<PrometheusMetrics>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    if method == Method::PATCH {
        if let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            #[allow(
                clippy::cast_precision_loss,
                reason = "a histogram observation: f64's 53 bits are exact far past 50 GiB"
            )]
            metrics.patch_bytes.observe(len as f64);
        }
    }
    let result = next.call(req).await;
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(response) => {
            let route = response
                .request()
                .match_pattern()
                .unwrap_or_else(|| UNMATCHED.to_owned());
            metrics.observe_request(&route, &method, response.status().as_u16(), seconds);
        }
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16();
            metrics.observe_request(UNMATCHED, &method, status, seconds);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use roughy_app::ports::{Backlog, PoolStats, RepoError};

    struct Fixed(Backlog);

    #[async_trait::async_trait]
    impl BacklogProbe for Fixed {
        async fn backlog(&self) -> Result<Backlog, RepoError> {
            Ok(self.0.clone())
        }
        fn pool(&self) -> Option<PoolStats> {
            Some(PoolStats {
                max_size: 8,
                size: 3,
                in_use: 2,
                waiting: 1,
            })
        }
    }

    /// The value of the sample line that starts with `series` (name and labels).
    fn sample(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            .parse()
            .unwrap()
    }

    #[tokio::test]
    async fn events_and_samples_render_in_the_text_format() {
        let m = PrometheusMetrics::new();
        let probe = Fixed(Backlog {
            active_uploads: 4,
            queued_jobs: 2,
            oldest_job_at: Some(OffsetDateTime::now_utc() - time::Duration::seconds(30)),
            pending_purges: 1,
            pending_deliveries: 3,
        });
        let before = m.render(&probe).await;
        assert_eq!(
            sample(&before, "roughy_uploads_total{event=\"reaped\"}"),
            0.0
        );
        m.upload(UploadEvent::Created, 2);
        m.upload(UploadEvent::Reaped, 3);
        m.bytes_received(1000);
        m.upload_lock_held(1);
        m.credits_charged(5);
        m.processed(MediaFormat::Wav, ProcessingOutcome::Ready, 0.5);
        m.observe_request("/v1/assets/{id}", &Method::GET, 200, 0.002);
        let text = m.render(&probe).await;
        assert_eq!(
            sample(&text, "roughy_uploads_total{event=\"created\"}"),
            2.0
        );
        assert_eq!(sample(&text, "roughy_uploads_total{event=\"reaped\"}"), 3.0);
        assert_eq!(sample(&text, "roughy_upload_bytes_received_total"), 1000.0);
        assert_eq!(sample(&text, "roughy_upload_locks_held"), 1.0);
        assert_eq!(sample(&text, "roughy_credits_charged_total"), 5.0);
        assert_eq!(
            sample(
                &text,
                "roughy_processing_duration_seconds_count{format=\"wav\",outcome=\"ready\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                "roughy_http_requests_total{route=\"/v1/assets/{id}\",method=\"GET\",status=\"200\"}"
            ),
            1.0
        );
        assert_eq!(sample(&text, "roughy_uploads_active"), 4.0);
        assert_eq!(sample(&text, "roughy_jobs_queued"), 2.0);
        assert!(sample(&text, "roughy_jobs_oldest_age_seconds") >= 30.0);
        assert_eq!(sample(&text, "roughy_purge_outbox_depth"), 1.0);
        assert_eq!(sample(&text, "roughy_webhook_deliveries_pending"), 3.0);
        assert_eq!(sample(&text, "roughy_db_pool_connections_in_use"), 2.0);
        assert_eq!(sample(&text, "roughy_db_pool_waiters"), 1.0);
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
