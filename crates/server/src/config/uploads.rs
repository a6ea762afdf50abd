//! The uploads section: the use cases' rules (upload and download lifetimes, processing
//! jobs, limits, retention) and how often the reaper runs.

use std::time::Duration;

use roughy_app::IngestConfig;

use super::env::{Env, SecsRange, DAY};
use super::ConfigError;

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
/// `ROUGHY_REAPER_INTERVAL_SECS`: 1 s to 1 day.
const REAPER_INTERVAL: SecsRange = SecsRange { min: 1, max: DAY };
/// `ROUGHY_JOB_RETRY_MAX_DELAY_SECS`: 1 s to 1 day.
const JOB_RETRY_MAX_DELAY: SecsRange = SecsRange { min: 1, max: DAY };
/// `ROUGHY_FAILED_RETENTION_SECS`: 1 minute to 365 days.
const FAILED_RETENTION: SecsRange = SecsRange {
    min: 60,
    max: 365 * DAY,
};

/// The rules handed whole to the use cases, and the reaper's pace.
#[derive(Debug, Clone)]
pub struct UploadsConfig {
    /// The use cases' rules:
    /// `ROUGHY_UPLOAD_TTL_SECS` (172800, 1 to 2592000 = 30 days): an idle upload's life;
    /// `ROUGHY_DOWNLOAD_TTL_SECS` (300, 1 to 604800 = 7 days): a download link's;
    /// `ROUGHY_JOB_LEASE_SECS` (600, 1 to 86400): how long a worker holds a processing job
    /// before another process may take it over (a worker that crashed mid-job);
    /// `ROUGHY_JOB_MAX_ATTEMPTS` (8, 1 to 100): attempts before the asset fails;
    /// `ROUGHY_JOB_RETRY_MAX_DELAY_SECS` (3600, 1 to 86400): the cap of the backoff;
    /// `ROUGHY_MAX_PENDING_UPLOADS` (100, 1 to 1000000): uploads an account may have pending
    /// (created, not finished) at once;
    /// `ROUGHY_FAILED_RETENTION_SECS` (604800, 60 to 31536000): how long the stored bytes of
    /// a failed asset are kept.
    pub rules: IngestConfig,
    /// `ROUGHY_REAPER_INTERVAL_SECS` (min(60, upload TTL / 4), 1 to 86400).
    pub reaper_interval: Duration,
}

impl UploadsConfig {
    /// Reads and checks the section.
    ///
    /// # Errors
    /// A `ConfigError` naming the first bad variable.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let upload_ttl = env.secs("ROUGHY_UPLOAD_TTL_SECS", 172_800, UPLOAD_TTL)?;
        let default_reaper = (upload_ttl.as_secs() / 4).clamp(1, 60);
        let rules = IngestConfig {
            upload_ttl: to_time(upload_ttl),
            download_ttl: to_time(env.secs("ROUGHY_DOWNLOAD_TTL_SECS", 300, DOWNLOAD_TTL)?),
            job_lease: to_time(env.secs("ROUGHY_JOB_LEASE_SECS", 600, JOB_LEASE)?),
            job_max_attempts: env.u32("ROUGHY_JOB_MAX_ATTEMPTS", 8, 1, 100)?,
            job_retry_max_delay: to_time(env.secs(
                "ROUGHY_JOB_RETRY_MAX_DELAY_SECS",
                3_600,
                JOB_RETRY_MAX_DELAY,
            )?),
            max_pending_uploads: env.u32("ROUGHY_MAX_PENDING_UPLOADS", 100, 1, 1_000_000)?,
            failed_retention: to_time(env.secs(
                "ROUGHY_FAILED_RETENTION_SECS",
                604_800,
                FAILED_RETENTION,
            )?),
            ..IngestConfig::default()
        };
        Ok(Self {
            rules,
            reaper_interval: env.secs(
                "ROUGHY_REAPER_INTERVAL_SECS",
                default_reaper,
                REAPER_INTERVAL,
            )?,
        })
    }
}

/// Every bound above fits a `time::Duration`; saturate rather than fail if one ever does not.
fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}
