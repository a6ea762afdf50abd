//! Configuration by environment, in typed sections: [`HttpConfig`], [`DatabaseConfig`],
//! [`StorageConfig`], [`MediaConfig`] and [`UploadsConfig`], each read and checked by its own
//! `from_env` and handed whole to what it configures. Every variable is documented on its
//! section's fields and in the README; a bad value stops start-up with a message naming the
//! variable (and, for a number, its range).
//!
//! Every number has an upper bound as well as a lower one, so that nothing computed from it
//! later (`now + ttl`, `ttl * 2`, a buffer of `part_size` bytes) can overflow or exhaust
//! the process.

mod database;
mod env;
mod http;
mod media;
mod storage;
mod uploads;
mod webhooks;

use std::path::PathBuf;

pub use self::database::{DatabaseConfig, RepositoryKind};
pub use self::env::Env;
pub use self::http::{HttpConfig, MIN_ADMIN_TOKEN_LEN};
pub use self::media::MediaConfig;
pub use self::storage::{BlobLocation, StorageConfig, MIN_SIGNING_KEY_LEN};
pub use self::uploads::UploadsConfig;
pub use self::webhooks::WebhooksConfig;

/// Start-up refused: names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// A refusal of `variable`.
    pub fn new(variable: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            reason: reason.into(),
        }
    }
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

/// The service configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ROUGHY_ROLE` (all): `all`, `api` or `worker`.
    pub role: Role,
    /// `ROUGHY_DATA_DIR` (./var): the embedded cluster, local blobs and the generated signing
    /// key live under it by default.
    pub data_dir: PathBuf,
    /// The HTTP server and adapter.
    pub http: HttpConfig,
    /// The repository.
    pub database: DatabaseConfig,
    /// Blob storage.
    pub storage: StorageConfig,
    /// The media inspector.
    pub media: MediaConfig,
    /// The use cases' rules and the reaper.
    pub uploads: UploadsConfig,
    pub webhooks: WebhooksConfig,
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
        let env = Env::new(get);
        let data_dir = PathBuf::from(
            env.var("ROUGHY_DATA_DIR")
                .unwrap_or_else(|| "./var".to_owned()),
        );
        let webhooks = WebhooksConfig::from_env(&env)?;
        let mut uploads = UploadsConfig::from_env(&env)?;
        uploads.rules.webhook_retry_delay = webhooks.retry_delay;
        uploads.rules.webhook_lease = webhooks.lease();
        Ok(Self {
            role: env.parse("ROUGHY_ROLE", "all", |v| match v {
                "all" => Ok(Role::All),
                "api" => Ok(Role::Api),
                "worker" => Ok(Role::Worker),
                _ => Err("must be all, api or worker".to_owned()),
            })?,
            http: HttpConfig::from_env(&env)?,
            database: DatabaseConfig::from_env(&env)?,
            storage: StorageConfig::from_env(&env, &data_dir)?,
            media: MediaConfig::from_env(&env)?,
            uploads,
            webhooks,
            data_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

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
        assert_eq!(c.http.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./var"));
        assert!(
            matches!(&c.storage.blobs, BlobLocation::Local(p) if p == &PathBuf::from("./var/blobs")),
            "{:?}",
            c.storage.blobs
        );
        assert_eq!(c.uploads.rules.upload_ttl, time::Duration::seconds(172_800));
        assert_eq!(c.uploads.rules.download_ttl, time::Duration::seconds(300));
        assert_eq!(c.http.settings.cors_origins, vec!["*"]);
        assert!(!c.http.settings.trust_proxy);
        assert!(c.http.settings.admin_token.is_none());
        assert_eq!(c.uploads.reaper_interval, Duration::from_secs(60));
        assert_eq!(c.database.repository, RepositoryKind::Postgres);
        assert!(c.database.url.is_none());
        assert!(!c.webhooks.transport.allow_private);
        assert_eq!(
            c.uploads.rules.webhook_retry_delay,
            time::Duration::seconds(30)
        );
        assert_eq!(c.uploads.rules.webhook_lease, time::Duration::seconds(25));
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
            ("ROUGHY_WEBHOOK_ALLOW_PRIVATE", "maybe"),
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
            ("ROUGHY_WEBHOOK_TIMEOUT_SECS", 1, 60),
            ("ROUGHY_WEBHOOK_RETRY_DELAY_SECS", 1, 3_600),
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
            c.uploads.rules.upload_ttl * 2,
            c.uploads.rules.download_ttl,
            c.uploads.rules.job_lease,
            c.uploads.rules.failed_retention,
        ] {
            assert!(far.checked_add(d).is_some());
            assert!(d.checked_mul(2).is_some());
        }
    }

    #[test]
    fn new_job_and_limit_variables_have_their_defaults_and_values() {
        let c = config(&[]).unwrap();
        assert_eq!(c.uploads.rules.job_max_attempts, 8);
        assert_eq!(
            c.uploads.rules.job_retry_max_delay,
            time::Duration::seconds(3_600)
        );
        assert_eq!(c.uploads.rules.max_pending_uploads, 100);
        assert_eq!(
            c.uploads.rules.failed_retention,
            time::Duration::seconds(604_800)
        );
        let c = config(&[
            ("ROUGHY_JOB_MAX_ATTEMPTS", "3"),
            ("ROUGHY_JOB_RETRY_MAX_DELAY_SECS", "120"),
            ("ROUGHY_MAX_PENDING_UPLOADS", " 5 "),
            ("ROUGHY_FAILED_RETENTION_SECS", "3600"),
        ])
        .unwrap();
        assert_eq!(c.uploads.rules.job_max_attempts, 3);
        assert_eq!(
            c.uploads.rules.job_retry_max_delay,
            time::Duration::seconds(120)
        );
        assert_eq!(c.uploads.rules.max_pending_uploads, 5);
        assert_eq!(
            c.uploads.rules.failed_retention,
            time::Duration::seconds(3_600)
        );
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
        assert!(c.http.settings.admin_token.as_ref().unwrap().matches(token));
        assert_eq!(c.storage.signing_key.as_ref().unwrap().expose_secret(), key);
        // Blank counts as unset.
        let c = config(&[("ROUGHY_ADMIN_TOKEN", "  "), ("ROUGHY_SIGNING_KEY", "")]).unwrap();
        assert!(c.http.settings.admin_token.is_none() && c.storage.signing_key.is_none());
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
            matches!(&c.storage.blobs, BlobLocation::Local(p) if p == &PathBuf::from("/tmp/x/blobs")),
            "{:?}",
            c.storage.blobs
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
        let BlobLocation::Object(settings) = &c.storage.blobs else {
            panic!("expected object storage, got {:?}", c.storage.blobs);
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
        assert!(matches!(c.storage.blobs, BlobLocation::Object(_)));
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
