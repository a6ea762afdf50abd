//! The HTTP section: where the service listens and how the HTTP adapter behaves.

use std::net::SocketAddr;

use secrecy::ExposeSecret;

use roughy_domain::AdminToken;
use roughy_http::HttpSettings;

use super::env::{Env, SecsRange};
use super::ConfigError;

/// `ROUGHY_ADMIN_TOKEN`: at least this many bytes once trimmed.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// `ROUGHY_BODY_IDLE_TIMEOUT_SECS`: 1 s to 1 hour.
const BODY_IDLE_TIMEOUT: SecsRange = SecsRange { min: 1, max: 3_600 };

/// The HTTP server and the settings handed whole to the HTTP adapter.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `ROUGHY_BIND` (127.0.0.1:8080).
    pub bind: SocketAddr,
    /// `ROUGHY_HTTP_WORKERS` (0: number of cores; at most 1024).
    pub workers: usize,
    /// `ROUGHY_METRICS_BIND`: where Prometheus scrapes `/metrics` (unset: no metrics, so
    /// they are never public by accident).
    pub metrics_bind: Option<SocketAddr>,
    /// The adapter's settings: `ROUGHY_PUBLIC_URL` (unset: derived from each request),
    /// `ROUGHY_TRUST_PROXY` (0), `ROUGHY_ADMIN_TOKEN` (unset: `/admin` is 404; trimmed, at
    /// least 16 bytes of printable ASCII, the presented token trimmed too),
    /// `ROUGHY_CORS_ORIGINS` (*, comma-separated) and `ROUGHY_BODY_IDLE_TIMEOUT_SECS`
    /// (60, 1 to 3600: an idle PATCH body is cut after this).
    pub settings: HttpSettings,
}

impl HttpConfig {
    /// Reads and checks the section.
    ///
    /// # Errors
    /// A `ConfigError` naming the first bad variable.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let bind = env.parse("ROUGHY_BIND", "127.0.0.1:8080", |v| {
            v.parse()
                .map_err(|e| format!("{e} (expected host:port, e.g. 127.0.0.1:8080)"))
        })?;
        let public_url = match env.var("ROUGHY_PUBLIC_URL") {
            Some(url) => Some(parse_public_url(&url)?),
            None => None,
        };
        let admin_token = env
            .secret("ROUGHY_ADMIN_TOKEN", MIN_ADMIN_TOKEN_LEN, true)?
            .and_then(|t| AdminToken::new(t.expose_secret().to_owned()));
        let metrics_bind = match env.var("ROUGHY_METRICS_BIND") {
            Some(_) => Some(env.parse("ROUGHY_METRICS_BIND", "", |v| {
                v.parse()
                    .map_err(|e| format!("{e} (expected host:port, e.g. 127.0.0.1:9090)"))
            })?),
            None => None,
        };
        Ok(Self {
            bind,
            metrics_bind,
            workers: env.usize("ROUGHY_HTTP_WORKERS", 0, 0, 1024)?,
            settings: HttpSettings {
                public_url,
                trust_proxy: env.flag("ROUGHY_TRUST_PROXY", false)?,
                admin_token,
                cors_origins: env.parse("ROUGHY_CORS_ORIGINS", "*", parse_origins)?,
                body_idle_timeout: env.secs(
                    "ROUGHY_BODY_IDLE_TIMEOUT_SECS",
                    60,
                    BODY_IDLE_TIMEOUT,
                )?,
                // Keyed at start-up with the signing key (storage section).
                ..HttpSettings::default()
            },
        })
    }
}

fn parse_origins(v: &str) -> Result<Vec<String>, String> {
    let origins: Vec<String> = v
        .split(',')
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    if origins
        .iter()
        .all(|o| o == "*" || o.starts_with("http://") || o.starts_with("https://"))
    {
        Ok(origins)
    } else {
        Err("must be * or comma-separated http(s) origins".to_owned())
    }
}

fn parse_public_url(url: &str) -> Result<String, ConfigError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && !url.contains(char::is_whitespace);
    if ok {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::new(
            "ROUGHY_PUBLIC_URL",
            format!("{url:?} is not an absolute http(s) URL"),
        ))
    }
}
