//! `roughy-server`: starts the service, configured only by the environment.
//! `roughy-server openapi` prints the OpenAPI document instead.

use std::process::ExitCode;

use roughy_embedded_postgres::EmbeddedError;
use roughy_server::{Application, Config, Overrides};

#[actix_web::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        #[allow(clippy::print_stdout, reason = "the document is the output")]
        {
            println!("{}", roughy_http::openapi_json());
        }
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Read before the rest of the configuration: its errors are logged in this format.
    match std::env::var("ROUGHY_LOG_FORMAT")
        .ok()
        .as_deref()
        .map(str::trim)
    {
        None | Some("" | "text") => tracing_subscriber::fmt().with_env_filter(filter).init(),
        // One JSON object per line; the request span's fields (request_id, method, path) are
        // on every line logged inside it.
        Some("json") => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .init(),
        Some(other) => {
            eprintln!("roughy-server: invalid ROUGHY_LOG_FORMAT: {other:?} must be text or json");
            return ExitCode::from(2);
        }
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("roughy-server: {e}");
            return ExitCode::from(2);
        }
    };
    let app = match Application::build(config, Overrides::default()).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("roughy-server: {e:#}");
            // Another process owns the embedded cluster: refused, like a bad variable.
            let refused = e.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<EmbeddedError>(),
                    Some(EmbeddedError::InUse { .. })
                )
            });
            return if refused {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            };
        }
    };
    match app.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roughy-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}
