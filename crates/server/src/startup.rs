//! Building the application from its configuration, and running it until shutdown.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use roughy_app::ports::{
    BacklogProbe, BlobStore, DownloadLinks, HealthCheck, Metrics, NoMetrics, UploadSink,
};
use roughy_app::{Clock, Ingest, IngestPorts, NotifyJobSignal, SystemClock};
use roughy_blobstore::{HmacDownloadLinks, LocalBlobStore, ObjectBlobStore};
use roughy_domain::UploadTokens;
use roughy_embedded_postgres::EmbeddedPostgres;
use roughy_http::{HttpSettings, HttpState};
use roughy_metrics::PrometheusMetrics;

use crate::config::{BlobLocation, Config};
use crate::repository::Repository;
use crate::workers;

/// What tests (or embedders) may replace.
#[derive(Default)]
pub struct Overrides {
    /// The clock (tests move it forward instead of sleeping).
    pub clock: Option<Arc<dyn Clock>>,
    /// A listener to serve on (tests bind port 0).
    pub listener: Option<TcpListener>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

/// A built, bound application.
pub struct Application {
    addr: SocketAddr,
    server: actix_web::dev::Server,
    workers: Vec<JoinHandle<()>>,
    stop_workers: watch::Sender<bool>,
    ingest: Ingest,
    embedded: Option<EmbeddedPostgres>,
    /// The metrics endpoint, when `ROUGHY_METRICS_BIND` is set.
    metrics: Option<(SocketAddr, actix_web::dev::ServerHandle)>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The blob store answers `/readyz`.
struct BlobHealth(Arc<dyn BlobStore>);

#[async_trait::async_trait]
impl HealthCheck for BlobHealth {
    fn name(&self) -> &'static str {
        "blob storage"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.check().await.map_err(|e| e.to_string())
    }
}

impl Application {
    /// Builds every adapter from `config`, wires the use cases, binds the listener and starts
    /// the background workers.
    ///
    /// # Errors
    /// Whatever stops start-up, with context.
    pub async fn build(config: Config, overrides: Overrides) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "failed to create ROUGHY_DATA_DIR {}",
                config.data_dir.display()
            )
        })?;
        // The HMAC key of local download links and of direct uploads' tokens: every process of
        // a deployment must have the same (ROUGHY_SIGNING_KEY; else kept in the data dir).
        let signing_key = match &config.storage.signing_key {
            Some(key) => key.expose_secret().as_bytes().to_vec(),
            None => roughy_blobstore::load_or_create_key(&config.data_dir.join("signing.key"))
                .context("failed to load or create the signing key in ROUGHY_DATA_DIR")?,
        };
        let (sink, blobs, links): (
            Arc<dyn UploadSink>,
            Arc<dyn BlobStore>,
            Arc<dyn DownloadLinks>,
        ) = match &config.storage.blobs {
            BlobLocation::Local(blob_root) => {
                let local = Arc::new(LocalBlobStore::new(blob_root.clone()).map_err(|e| {
                    anyhow::anyhow!("failed to open blob storage {}: {e}", blob_root.display())
                })?);
                tracing::info!(root = %blob_root.display(), "blob storage: local disk");
                let links = HmacDownloadLinks::new(signing_key.clone())
                    .map_err(|e| anyhow::anyhow!("invalid ROUGHY_SIGNING_KEY: {e}"))?;
                (local.clone(), local, Arc::new(links))
            }
            BlobLocation::Object(settings) => {
                let store = Arc::new(
                    ObjectBlobStore::new(settings)
                        .map_err(|e| anyhow::anyhow!("invalid {}: {}", e.variable, e.reason))?,
                );
                tracing::info!(url = %settings.url, part_size = settings.part_size, parts_in_flight = settings.parts_in_flight, "blob storage: object store");
                let links = Arc::new(store.links());
                (store.clone(), store, links)
            }
        };

        let repository = Repository::open(&config.database, &config.data_dir).await?;
        let signal = Arc::new(NotifyJobSignal::new());
        let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
        // Counted only when they are exported.
        let prometheus = Arc::new(PrometheusMetrics::new());
        let metrics: Arc<dyn Metrics> = if config.http.metrics_bind.is_some() {
            prometheus.clone()
        } else {
            Arc::new(NoMetrics)
        };
        let ports = IngestPorts {
            accounts: repository.accounts.clone(),
            projects: repository.projects.clone(),
            assets: repository.assets.clone(),
            uploads: repository.uploads.clone(),
            jobs: repository.jobs.clone(),
            purges: repository.purges.clone(),
            idempotency: repository.idempotency.clone(),
            webhooks: repository.webhooks.clone(),
            webhook_transport: Arc::new(
                roughy_webhooks::HttpWebhookTransport::new(&config.webhooks.transport)
                    .context("failed to build the webhook HTTP client")?,
            ),
            event_encoder: Arc::new(roughy_http::JsonEvents),
            locks: repository.locks.clone(),
            sink,
            blobs: blobs.clone(),
            media: config.media.inspector()?,
            links,
            job_signal: signal.clone(),
            clock,
            metrics,
        };
        let ingest = Ingest::new(ports, config.uploads.rules.clone());

        if config.storage.signing_key.is_none()
            && !matches!(config.storage.blobs, BlobLocation::Local(_))
        {
            tracing::warn!("ROUGHY_SIGNING_KEY is unset: direct upload URLs minted by this process are valid only here (set the same key on every process)");
        }
        let state = HttpState {
            ingest: ingest.clone(),
            settings: HttpSettings {
                upload_tokens: UploadTokens::new(signing_key),
                ..config.http.settings.clone()
            },
            readiness: vec![
                repository.health.clone(),
                Arc::new(BlobHealth(blobs)) as Arc<dyn HealthCheck>,
            ],
        };
        let listener = match overrides.listener {
            Some(l) => l,
            None => TcpListener::bind(config.http.bind)
                .with_context(|| format!("failed to bind ROUGHY_BIND {}", config.http.bind))?,
        };
        let addr = listener
            .local_addr()
            .context("failed to read the bound address")?;
        let settings = state.settings.clone();
        let role = config.role;
        let observed = prometheus.clone();
        let observing = config.http.metrics_bind.is_some();
        let mut server = HttpServer::new(move || {
            let observed = observed.clone();
            let app = App::new()
                .wrap(actix_web::middleware::Condition::new(
                    observing,
                    actix_web::middleware::from_fn(move |req, next| {
                        roughy_metrics::observe(observed.clone(), req, next)
                    }),
                ))
                .wrap(actix_web::middleware::from_fn(roughy_http::json_utf8))
                .wrap(roughy_http::cors(&settings))
                // Outside the CORS layer: a direct upload bound to one origin answers only it.
                .wrap(actix_web::middleware::from_fn(
                    roughy_http::direct_upload_cors,
                ))
                .wrap(
                    actix_web::middleware::Logger::new("%r %s %b %Dms request_id=%{x-request-id}o")
                        .log_target("roughy::access"),
                )
                .wrap(actix_web::middleware::from_fn(roughy_http::request_id));
            let app = if role.serves_api() {
                app.configure(roughy_http::configure(state.clone()))
            } else {
                app.configure(roughy_http::configure_health(state.clone()))
            };
            app.default_service(web::to(roughy_http::not_found))
        })
        .listen(listener)
        .context("failed to listen")?
        .shutdown_timeout(30);
        if config.http.workers > 0 {
            server = server.workers(config.http.workers);
        }
        let server = server.run();
        let metrics = match config.http.metrics_bind {
            Some(bind) => Some(serve_metrics(bind, prometheus, repository.backlog.clone())?),
            None => None,
        };

        let (stop_workers, stop) = watch::channel(false);
        let workers = if config.role.runs_workers() {
            vec![
                tokio::spawn(workers::processing(ingest.clone(), signal, stop.clone())),
                tokio::spawn(workers::reaper(
                    ingest.clone(),
                    config.uploads.reaper_interval,
                    stop.clone(),
                )),
                tokio::spawn(workers::webhooks(ingest.clone(), stop)),
            ]
        } else {
            Vec::new()
        };
        tracing::info!(%addr, public_url = ?config.http.settings.public_url, role = ?config.role, "roughy-server listening");
        Ok(Self {
            addr,
            server,
            workers,
            stop_workers,
            ingest,
            embedded: repository.embedded,
            metrics,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served, when `ROUGHY_METRICS_BIND` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// The use cases (tests drive workers and the clock through it).
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    /// A handle that stops the HTTP server gracefully.
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (or the server handle stops it): stops accepting, lets
    /// in-flight requests finish or cuts them cleanly, then stops the workers.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run(self) -> anyhow::Result<()> {
        let result = self.server.await.context("HTTP server failed");
        tracing::info!("HTTP server stopped; stopping workers");
        if let Some((_, metrics)) = &self.metrics {
            metrics.stop(true).await;
        }
        let _ = self.stop_workers.send(true);
        for worker in self.workers {
            let _ = worker.await;
        }
        if let Some(cluster) = self.embedded {
            tracing::info!("stopping the embedded PostgreSQL cluster");
            match tokio::task::spawn_blocking(move || cluster.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "embedded PostgreSQL did not stop cleanly")
                }
                Err(e) => tracing::warn!(error = %e, "embedded PostgreSQL stop task failed"),
            }
        }
        tracing::info!("shut down");
        result
    }
}

/// Serves `/metrics` on its own address (one worker, no signal handling of its own: it stops
/// with the application).
fn serve_metrics(
    bind: SocketAddr,
    metrics: Arc<PrometheusMetrics>,
    probe: Arc<dyn BacklogProbe>,
) -> anyhow::Result<(SocketAddr, actix_web::dev::ServerHandle)> {
    let listener = TcpListener::bind(bind)
        .with_context(|| format!("failed to bind ROUGHY_METRICS_BIND {bind}"))?;
    let addr = listener
        .local_addr()
        .context("failed to read the metrics address")?;
    let server = HttpServer::new(move || {
        let (metrics, probe) = (metrics.clone(), probe.clone());
        App::new().route(
            "/metrics",
            web::get().to(move || {
                let (metrics, probe) = (metrics.clone(), probe.clone());
                async move {
                    HttpResponse::Ok()
                        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
                        .body(metrics.render(probe.as_ref()).await)
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .context("failed to listen on ROUGHY_METRICS_BIND")?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    tracing::info!(%addr, "metrics served at /metrics");
    Ok((addr, handle))
}
