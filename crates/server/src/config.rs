//! Configuration by environment. Every variable is documented here and in the README; a bad
//! value stops start-up with a message naming the variable (and, for a number, its range).
//!
//! Every number has an upper bound as well as a lower one, so that nothing computed from it
//! later (`now + ttl`, `ttl * 2`, a buffer of `part_size` bytes) can overflow or exhaust
//! the process: the bounds are the `*_SECS` ranges and limits below.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use roughy_blobstore::ObjectStoreSettings;

/// A duration variable's allowed range, in seconds.
#[derive(Debug, Clone, Copy)]
struct SecsRange {
    min: u64,
    max: u64,
}

/// `ROUGHY_UPLOAD_TTL_SECS`: 1 s to 30 days.
const UPLOAD_TTL: SecsRange = SecsRange {
    min: 1,
    max: 30 * DAY,
};
/// `ROUGHY_DOWNLOAD_TTL_SECS`: 1 s to 7 days.
const DOWNLOAD_TTL: SecsRange = SecsRange {
    min: 1,
    max: 7 * DAY,
};
/// `ROUGHY_JOB_LEASE_SECS`: 1 s to 1 day.
const JOB_LEASE: SecsRange = SecsRange { min: 1, max: DAY };
/// `ROUGHY_BODY_IDLE_TIMEOUT_SECS`: 1 s to 1 hour.
const BODY_IDLE_TIMEOUT: SecsRange = SecsRange { min: 1, max: 3_600 };
/// `ROUGHY_REAPER_INTERVAL_SECS`: 1 s to 1 day.
const REAPER_INTERVAL: SecsRange = SecsRange { min: 1, max: DAY };
/// `ROUGHY_JOB_RETRY_MAX_DELAY_SECS`: 1 s to 1 day.
const JOB_RETRY_MAX_DELAY: SecsRange = SecsRange { min: 1, max: DAY };
/// `ROUGHY_FAILED_RETENTION_SECS`: 1 minute to 365 days.
const FAILED_RETENTION: SecsRange = SecsRange {
    min: 60,
    max: 365 * DAY,
};
const DAY: u64 = 86_400;

/// `ROUGHY_ADMIN_TOKEN`: at least this many bytes once trimmed.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// `ROUGHY_SIGNING_KEY`: at least this many bytes once trimmed (the HMAC-SHA256 output size).
pub const MIN_SIGNING_KEY_LEN: usize = 32;
/// `ROUGHY_STORAGE_PART_SIZE`: at most 5 GiB, S3's largest part (each PATCH buffers parts).
const MAX_PART_SIZE: u64 = 5 << 30;

/// Start-up refused: names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: String,
    /// What is wrong.
    pub reason: String,
}

/// Where blobs live.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// A local directory (`file://…`).
    Local(PathBuf),
    /// An object store (`s3://`, `gs://`, `az://`), with its options and staging sizes.
    Object(ObjectStoreSettings),
}

/// What a process runs (`ROUGHY_ROLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The HTTP API and the background work (one process does everything).
    All,
    /// The HTTP API only: no processing, no reaper.
    Api,
    /// Processing and the reaper; HTTP serves only `/healthz` and `/readyz`.
    Worker,
}

impl Role {
    /// Whether the process serves the API.
    pub fn serves_api(self) -> bool {
        matches!(self, Self::All | Self::Api)
    }

    /// Whether the process runs processing and the reaper.
    pub fn runs_workers(self) -> bool {
        matches!(self, Self::All | Self::Worker)
    }
}

/// Which repository adapter holds accounts, projects, assets and the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepositoryKind {
    /// PostgreSQL: `DATABASE_URL`, or an embedded cluster under the data dir when unset.
    Postgres,
    /// In memory: lost when the process stops (demos, tests).
    Memory,
}

/// The service configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ROUGHY_BIND` (127.0.0.1:8080).
    pub bind: SocketAddr,
    /// `ROUGHY_PUBLIC_URL` (http://<bind>); `None` derives it from each request.
    pub public_url: Option<String>,
    /// `ROUGHY_DATA_DIR` (./var).
    pub data_dir: PathBuf,
    /// `ROUGHY_REPOSITORY` (postgres).
    pub repository: RepositoryKind,
    /// `DATABASE_URL` (unset → embedded cluster under `<data dir>/pg`).
    pub database_url: Option<SecretString>,
    /// `ROUGHY_DB_POOL_SIZE` (16): connections per process.
    pub db_pool_size: usize,
    /// `ROUGHY_STORAGE_URL` (file://<data dir>/blobs).
    pub storage: StorageConfig,
    /// `ROUGHY_ROLE` (all): `all`, `api` or `worker`.
    pub role: Role,
    /// `ROUGHY_ADMIN_TOKEN` (unset: `/admin` is 404): trimmed, at least 16 bytes of
    /// printable ASCII (the presented token is trimmed too).
    pub admin_token: Option<SecretString>,
    /// `ROUGHY_SIGNING_KEY` (generated and kept in the data dir): trimmed, at least 32 bytes.
    pub signing_key: Option<SecretString>,
    /// `ROUGHY_UPLOAD_TTL_SECS` (172800, 1 to 2592000 = 30 days).
    pub upload_ttl: Duration,
    /// `ROUGHY_DOWNLOAD_TTL_SECS` (300, 1 to 604800 = 7 days).
    pub download_ttl: Duration,
    /// `ROUGHY_CORS_ORIGINS` (*), comma-separated.
    pub cors_origins: Vec<String>,
    /// `ROUGHY_TRUST_PROXY` (0).
    pub trust_proxy: bool,
    /// `ROUGHY_BODY_IDLE_TIMEOUT_SECS` (60, 1 to 3600): an idle PATCH body is cut after this.
    pub body_idle_timeout: Duration,
    /// `ROUGHY_JOB_LEASE_SECS` (600, 1 to 86400): how long a worker holds a processing job
    /// before another process may take it over (a worker that crashed mid-job).
    pub job_lease: Duration,
    /// `ROUGHY_JOB_MAX_ATTEMPTS` (8, 1 to 100): how many times a processing job is tried
    /// before its asset fails.
    pub job_max_attempts: u32,
    /// `ROUGHY_JOB_RETRY_MAX_DELAY_SECS` (3600, 1 to 86400): the cap of the backoff between
    /// two attempts of a processing job.
    pub job_retry_max_delay: Duration,
    /// `ROUGHY_MAX_PENDING_UPLOADS` (100, 1 to 1000000): uploads an account may have pending
    /// (created, not finished) at once.
    pub max_pending_uploads: u32,
    /// `ROUGHY_FAILED_RETENTION_SECS` (604800, 60 to 31536000): how long the stored bytes of a
    /// failed asset are kept before they are deleted.
    pub failed_retention: Duration,
    /// `ROUGHY_REAPER_INTERVAL_SECS` (min(60, TTL/4), 1 to 86400).
    pub reaper_interval: Duration,
    /// `ROUGHY_MEDIA_PROBE` (symphonia): the media inspector, `symphonia` (pure Rust) or
    /// `ffprobe` (the FFmpeg program, run as a subprocess).
    pub media_probe: String,
    /// `ROUGHY_HTTP_WORKERS` (0: number of cores; at most 1024).
    pub http_workers: usize,
}

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// A `ConfigError` naming the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (tests pass a map).
    ///
    /// # Errors
    /// A `ConfigError` naming the first bad variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let bind: SocketAddr = parse(&var, "ROUGHY_BIND", "127.0.0.1:8080", |v| {
            v.parse()
                .map_err(|e| format!("{e} (expected host:port, e.g. 127.0.0.1:8080)"))
        })?;
        let public_url = match var("ROUGHY_PUBLIC_URL") {
            Some(url) => Some(parse_public_url(&url)?),
            None => None,
        };
        let data_dir = PathBuf::from(var("ROUGHY_DATA_DIR").unwrap_or_else(|| "./var".to_owned()));
        let storage = match var("ROUGHY_STORAGE_URL") {
            None => StorageConfig::Local(data_dir.join("blobs")),
            Some(url) => parse_storage_url(&url, &var)?,
        };
        let secs = |name: &'static str, default: u64, range: SecsRange| {
            number(&var, name, default, range.min, range.max, " seconds").map(Duration::from_secs)
        };
        let upload_ttl = secs("ROUGHY_UPLOAD_TTL_SECS", 172_800, UPLOAD_TTL)?;
        let default_reaper = (upload_ttl.as_secs() / 4).clamp(1, 60);
        Ok(Self {
            bind,
            public_url,
            repository: parse(&var, "ROUGHY_REPOSITORY", "postgres", |v| match v {
                "postgres" => Ok(RepositoryKind::Postgres),
                "memory" => Ok(RepositoryKind::Memory),
                _ => Err("must be postgres or memory".to_owned()),
            })?,
            database_url: match var("DATABASE_URL") {
                None => None,
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    Some(SecretString::from(url))
                }
                Some(_) => {
                    return Err(ConfigError {
                        variable: "DATABASE_URL".into(),
                        reason: "must be a postgres:// URL".into(),
                    })
                }
            },
            db_pool_size: usize_from(number(&var, "ROUGHY_DB_POOL_SIZE", 16, 1, 1000, "")?),
            storage,
            role: parse(&var, "ROUGHY_ROLE", "all", |v| match v {
                "all" => Ok(Role::All),
                "api" => Ok(Role::Api),
                "worker" => Ok(Role::Worker),
                _ => Err("must be all, api or worker".to_owned()),
            })?,
            admin_token: secret(&var, "ROUGHY_ADMIN_TOKEN", MIN_ADMIN_TOKEN_LEN, true)?,
            signing_key: secret(&var, "ROUGHY_SIGNING_KEY", MIN_SIGNING_KEY_LEN, false)?,
            upload_ttl,
            download_ttl: secs("ROUGHY_DOWNLOAD_TTL_SECS", 300, DOWNLOAD_TTL)?,
            cors_origins: parse(&var, "ROUGHY_CORS_ORIGINS", "*", |v| {
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
            })?,
            trust_proxy: parse(&var, "ROUGHY_TRUST_PROXY", "0", |v| match v {
                "0" | "false" => Ok(false),
                "1" | "true" => Ok(true),
                _ => Err("must be 0 or 1".to_owned()),
            })?,
            body_idle_timeout: secs("ROUGHY_BODY_IDLE_TIMEOUT_SECS", 60, BODY_IDLE_TIMEOUT)?,
            reaper_interval: secs(
                "ROUGHY_REAPER_INTERVAL_SECS",
                default_reaper,
                REAPER_INTERVAL,
            )?,
            job_lease: secs("ROUGHY_JOB_LEASE_SECS", 600, JOB_LEASE)?,
            job_max_attempts: u32_from(number(&var, "ROUGHY_JOB_MAX_ATTEMPTS", 8, 1, 100, "")?),
            job_retry_max_delay: secs(
                "ROUGHY_JOB_RETRY_MAX_DELAY_SECS",
                3_600,
                JOB_RETRY_MAX_DELAY,
            )?,
            max_pending_uploads: u32_from(number(
                &var,
                "ROUGHY_MAX_PENDING_UPLOADS",
                100,
                1,
                1_000_000,
                "",
            )?),
            failed_retention: secs("ROUGHY_FAILED_RETENTION_SECS", 604_800, FAILED_RETENTION)?,
            media_probe: parse(&var, "ROUGHY_MEDIA_PROBE", "symphonia", |v| match v {
                "symphonia" | "ffprobe" => Ok(v.to_owned()),
                _ => Err("must be symphonia or ffprobe".to_owned()),
            })?,
            http_workers: usize_from(number(&var, "ROUGHY_HTTP_WORKERS", 0, 0, 1024, "")?),
            data_dir,
        })
    }

    /// The public URL links are built from, when it is fixed.
    pub fn effective_public_url(&self) -> Option<String> {
        self.public_url.clone()
    }
}

fn parse<T>(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
    f: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let raw = var(name).unwrap_or_else(|| default.to_owned());
    f(raw.trim()).map_err(|reason| ConfigError {
        variable: name.to_owned(),
        reason,
    })
}

/// A whole number from `min` to `max` (inclusive), `default` when unset. The message names
/// the range: `must be a whole number of seconds from 1 to 604800`.
fn number(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<u64, ConfigError> {
    parse(var, name, &default.to_string(), |v| {
        match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("must be a whole number{unit} from {min} to {max}")),
        }
    })
}

/// A bounded number as a `usize` (every bound here fits in 32 bits).
fn usize_from(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A bounded number as a `u32` (every bound here fits).
fn u32_from(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A secret variable, trimmed, of at least `min_len` bytes (printable ASCII only when
/// `printable`: it must be presentable in an `Authorization` header); `None` when unset.
fn secret(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    min_len: usize,
    printable: bool,
) -> Result<Option<SecretString>, ConfigError> {
    let Some(raw) = var(name) else {
        return Ok(None);
    };
    let value = raw.trim();
    let refuse = |reason: String| ConfigError {
        variable: name.to_owned(),
        reason,
    };
    // Never echo the value: it is a secret.
    if value.len() < min_len {
        return Err(refuse(format!(
            "must be at least {min_len} bytes once trimmed (got {})",
            value.len()
        )));
    }
    if printable && !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(refuse(format!(
            "must be at least {min_len} bytes of printable ASCII (no control or non-ASCII \
             characters)"
        )));
    }
    Ok(Some(SecretString::from(value.to_owned())))
}

fn parse_public_url(url: &str) -> Result<String, ConfigError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && !url.contains(char::is_whitespace);
    if ok {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError {
            variable: "ROUGHY_PUBLIC_URL".into(),
            reason: format!("{url:?} is not an absolute http(s) URL"),
        })
    }
}

fn parse_storage_url(
    url: &str,
    var: &impl Fn(&str) -> Option<String>,
) -> Result<StorageConfig, ConfigError> {
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(ConfigError {
                variable: "ROUGHY_STORAGE_URL".into(),
                reason: "file:// needs a path".into(),
            });
        }
        return Ok(StorageConfig::Local(PathBuf::from(path)));
    }
    // The lower bounds (S3's 5 MiB and 10,000 parts per upload) are checked by the store.
    let size = |name: &'static str, default: usize, max: u64| {
        number(var, name, default as u64, 1, max, "").map(usize_from)
    };
    let settings = ObjectStoreSettings {
        url: url.to_owned(),
        options: roughy_blobstore::option_variables(url)
            .iter()
            .filter_map(|name| var(name).map(|v| ((*name).to_owned(), v)))
            .collect(),
        part_size: size(
            "ROUGHY_STORAGE_PART_SIZE",
            roughy_blobstore::DEFAULT_PART_SIZE,
            MAX_PART_SIZE,
        )?,
        parts_in_flight: size(
            "ROUGHY_STORAGE_PARTS_IN_FLIGHT",
            roughy_blobstore::DEFAULT_PARTS_IN_FLIGHT,
            64,
        )?,
    };
    // Building makes no request: it checks the URL, the options and the credentials.
    roughy_blobstore::ObjectBlobStore::new(&settings).map_err(|e| ConfigError {
        variable: e.variable,
        reason: e.reason,
    })?;
    Ok(StorageConfig::Object(settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./var"));
        assert!(
            matches!(&c.storage, StorageConfig::Local(p) if p == &PathBuf::from("./var/blobs")),
            "{:?}",
            c.storage
        );
        assert_eq!(c.upload_ttl, Duration::from_secs(172_800));
        assert_eq!(c.download_ttl, Duration::from_secs(300));
        assert_eq!(c.cors_origins, vec!["*"]);
        assert!(!c.trust_proxy);
        assert!(c.admin_token.is_none());
        assert_eq!(c.reaper_interval, Duration::from_secs(60));
        assert_eq!(c.repository, RepositoryKind::Postgres);
        assert!(c.database_url.is_none());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (k, v) in [
            ("ROUGHY_BIND", "nope"),
            ("ROUGHY_PUBLIC_URL", "ftp://x"),
            ("ROUGHY_UPLOAD_TTL_SECS", "-1"),
            ("ROUGHY_DOWNLOAD_TTL_SECS", "soon"),
            ("ROUGHY_TRUST_PROXY", "yes please"),
            ("ROUGHY_STORAGE_URL", "gopher://x"),
            ("ROUGHY_CORS_ORIGINS", "example.com"),
            ("ROUGHY_REPOSITORY", "mongo"),
            ("DATABASE_URL", "mysql://x"),
            ("ROUGHY_DB_POOL_SIZE", "0"),
            ("ROUGHY_MEDIA_PROBE", "mediainfo"),
        ] {
            let err = config(&[(k, v)]).unwrap_err();
            assert_eq!(err.variable, k);
            assert!(err.to_string().contains(k));
        }
    }

    #[test]
    fn every_number_is_bounded_on_both_sides() {
        // (variable, lowest allowed, highest allowed)
        for (k, low, high) in [
            ("ROUGHY_UPLOAD_TTL_SECS", 1, 2_592_000),
            ("ROUGHY_DOWNLOAD_TTL_SECS", 1, 604_800),
            ("ROUGHY_JOB_LEASE_SECS", 1, 86_400),
            ("ROUGHY_BODY_IDLE_TIMEOUT_SECS", 1, 3_600),
            ("ROUGHY_REAPER_INTERVAL_SECS", 1, 86_400),
            ("ROUGHY_JOB_MAX_ATTEMPTS", 1, 100),
            ("ROUGHY_JOB_RETRY_MAX_DELAY_SECS", 1, 86_400),
            ("ROUGHY_MAX_PENDING_UPLOADS", 1, 1_000_000),
            ("ROUGHY_FAILED_RETENTION_SECS", 60, 31_536_000),
            ("ROUGHY_DB_POOL_SIZE", 1, 1000),
            ("ROUGHY_HTTP_WORKERS", 0, 1024),
        ] {
            for ok in [low, high] {
                config(&[(k, &ok.to_string())])
                    .unwrap_or_else(|e| panic!("{k}={ok} is allowed: {e}"));
            }
            let mut refused = vec![(high + 1).to_string(), u64::MAX.to_string(), "-1".into()];
            if low > 0 {
                refused.push((low - 1).to_string());
            }
            refused.extend(["1e3".into(), "99999999999999999999999".into()]);
            for bad in refused {
                let err = config(&[(k, &bad)]).expect_err(&format!("{k}={bad} is refused"));
                assert_eq!(err.variable, k);
                let message = err.to_string();
                assert!(
                    message.contains(&format!("from {low} to {high}")),
                    "{k}={bad}: the range is named: {message}"
                );
            }
        }
    }

    #[test]
    fn the_largest_durations_cannot_overflow_what_is_computed_from_them() {
        let c = config(&[
            ("ROUGHY_UPLOAD_TTL_SECS", "2592000"),
            ("ROUGHY_DOWNLOAD_TTL_SECS", "604800"),
            ("ROUGHY_JOB_LEASE_SECS", "86400"),
            ("ROUGHY_FAILED_RETENTION_SECS", "31536000"),
        ])
        .unwrap();
        let far = time::macros::datetime!(9000-01-01 0:00 UTC);
        for d in [
            c.upload_ttl * 2,
            c.download_ttl,
            c.job_lease,
            c.failed_retention,
        ] {
            let d = time::Duration::try_from(d).unwrap();
            assert!(far.checked_add(d).is_some());
            assert!(d.checked_mul(2).is_some());
        }
    }

    #[test]
    fn new_job_and_limit_variables_have_their_defaults_and_values() {
        let c = config(&[]).unwrap();
        assert_eq!(c.job_max_attempts, 8);
        assert_eq!(c.job_retry_max_delay, Duration::from_secs(3_600));
        assert_eq!(c.max_pending_uploads, 100);
        assert_eq!(c.failed_retention, Duration::from_secs(604_800));
        let c = config(&[
            ("ROUGHY_JOB_MAX_ATTEMPTS", "3"),
            ("ROUGHY_JOB_RETRY_MAX_DELAY_SECS", "120"),
            ("ROUGHY_MAX_PENDING_UPLOADS", " 5 "),
            ("ROUGHY_FAILED_RETENTION_SECS", "3600"),
        ])
        .unwrap();
        assert_eq!(c.job_max_attempts, 3);
        assert_eq!(c.job_retry_max_delay, Duration::from_secs(120));
        assert_eq!(c.max_pending_uploads, 5);
        assert_eq!(c.failed_retention, Duration::from_secs(3_600));
    }

    #[test]
    fn secrets_are_trimmed_and_long_enough() {
        use secrecy::ExposeSecret;
        let token = "an-admin-token-16";
        let key = "k".repeat(32);
        let c = config(&[
            ("ROUGHY_ADMIN_TOKEN", &format!(" \t{token}\r\n")),
            ("ROUGHY_SIGNING_KEY", &format!("{key}\n")),
        ])
        .unwrap();
        assert_eq!(c.admin_token.as_ref().unwrap().expose_secret(), token);
        assert_eq!(c.signing_key.as_ref().unwrap().expose_secret(), key);
        // Blank counts as unset.
        let c = config(&[("ROUGHY_ADMIN_TOKEN", "  "), ("ROUGHY_SIGNING_KEY", "")]).unwrap();
        assert!(c.admin_token.is_none() && c.signing_key.is_none());
        for (k, bad) in [
            ("ROUGHY_ADMIN_TOKEN", "x".repeat(15)),
            ("ROUGHY_ADMIN_TOKEN", format!("   {}   ", "x".repeat(15))),
            ("ROUGHY_ADMIN_TOKEN", format!("{}\u{7}", "x".repeat(16))),
            ("ROUGHY_ADMIN_TOKEN", format!("{}é", "x".repeat(16))),
            ("ROUGHY_SIGNING_KEY", "k".repeat(31)),
            ("ROUGHY_SIGNING_KEY", format!(" {} ", "k".repeat(31))),
        ] {
            let err = config(&[(k, &bad)]).expect_err(&format!("{k}={bad:?} is refused"));
            assert_eq!(err.variable, k);
            assert!(err.to_string().contains("at least"), "{err}");
            assert!(
                !err.to_string().contains(bad.trim()),
                "the secret is not echoed: {err}"
            );
        }
    }

    #[test]
    fn storage_defaults_under_the_data_dir() {
        let c = config(&[("ROUGHY_DATA_DIR", "/tmp/x")]).unwrap();
        assert!(
            matches!(&c.storage, StorageConfig::Local(p) if p == &PathBuf::from("/tmp/x/blobs")),
            "{:?}",
            c.storage
        );
    }

    #[test]
    fn object_storage_urls_are_parsed_and_checked() {
        let s3 = |extra: &[(&str, &str)]| {
            let mut vars = vec![
                ("ROUGHY_STORAGE_URL", "s3://bucket/some/prefix"),
                ("AWS_ACCESS_KEY_ID", "key"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ENDPOINT", "http://127.0.0.1:9"),
                ("AWS_ALLOW_HTTP", "true"),
            ];
            vars.extend_from_slice(extra);
            let map: std::collections::HashMap<String, String> = vars
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            Config::from_lookup(|k| map.get(k).cloned())
        };
        let c = s3(&[]).expect("valid s3 config");
        let StorageConfig::Object(settings) = &c.storage else {
            panic!("expected object storage, got {:?}", c.storage);
        };
        assert_eq!(settings.url, "s3://bucket/some/prefix");
        assert_eq!(settings.part_size, roughy_blobstore::DEFAULT_PART_SIZE);
        assert!(settings
            .options
            .iter()
            .any(|(k, v)| k == "AWS_ENDPOINT" && v == "http://127.0.0.1:9"));

        let err = s3(&[("AWS_SECRET_ACCESS_KEY", "")]).expect_err("secret missing");
        assert_eq!(err.variable, "AWS_SECRET_ACCESS_KEY");
        let err = s3(&[("ROUGHY_STORAGE_PART_SIZE", "1048576")]).expect_err("parts too small");
        assert_eq!(err.variable, "ROUGHY_STORAGE_PART_SIZE");
        let err = s3(&[("ROUGHY_STORAGE_PARTS_IN_FLIGHT", "0")]).expect_err("no parts in flight");
        assert_eq!(err.variable, "ROUGHY_STORAGE_PARTS_IN_FLIGHT");
        let err = s3(&[("ROUGHY_STORAGE_PARTS_IN_FLIGHT", "65")]).expect_err("too many in flight");
        assert_eq!(err.variable, "ROUGHY_STORAGE_PARTS_IN_FLIGHT");
        let err = s3(&[("ROUGHY_STORAGE_PART_SIZE", "5368709121")]).expect_err("parts too large");
        assert_eq!(err.variable, "ROUGHY_STORAGE_PART_SIZE");
        assert!(err.to_string().contains("to 5368709120"), "{err}");
        s3(&[("ROUGHY_STORAGE_PART_SIZE", "5368709120")]).expect("S3's largest part");
        let err = s3(&[("ROUGHY_STORAGE_URL", "s3:///nobucket")]).expect_err("no bucket");
        assert_eq!(err.variable, "ROUGHY_STORAGE_URL");
        let err = s3(&[("ROUGHY_STORAGE_URL", "ftp://x/y")]).expect_err("unknown scheme");
        assert_eq!(err.variable, "ROUGHY_STORAGE_URL");
    }

    #[test]
    fn gcs_and_azure_urls_go_through_their_builders() {
        let lookup = |url: &'static str, extra: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                if k == "ROUGHY_STORAGE_URL" {
                    return Some(url.to_owned());
                }
                extra
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let c = Config::from_lookup(lookup(
            "az://container/prefix",
            &[
                ("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1"),
                ("AZURE_STORAGE_ACCOUNT_KEY", "Zm9v"),
            ],
        ))
        .expect("valid azure config");
        assert!(matches!(c.storage, StorageConfig::Object(_)));
        let c = Config::from_lookup(lookup(
            "gs://bucket/prefix",
            &[("GOOGLE_SERVICE_ACCOUNT_KEY", "{\"private_key\": \"x\"}")],
        ));
        // A service-account key that does not parse names the storage URL's builder.
        if let Err(e) = c {
            assert_eq!(e.variable, "ROUGHY_STORAGE_URL");
        }
    }

    #[test]
    fn roles() {
        for (raw, role) in [
            ("all", Role::All),
            ("api", Role::Api),
            ("worker", Role::Worker),
        ] {
            let c = Config::from_lookup(|k| (k == "ROUGHY_ROLE").then(|| raw.to_owned()))
                .expect("valid role");
            assert_eq!(c.role, role);
        }
        assert!(Role::Api.serves_api() && !Role::Api.runs_workers());
        assert!(!Role::Worker.serves_api() && Role::Worker.runs_workers());
        let err = Config::from_lookup(|k| (k == "ROUGHY_ROLE").then(|| "both".to_owned()))
            .expect_err("unknown role");
        assert_eq!(err.variable, "ROUGHY_ROLE");
    }
}
