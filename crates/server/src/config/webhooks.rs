//! The webhooks section: how deliveries are sent and retried.

use roughy_webhooks::TransportSettings;

use super::env::{Env, SecsRange};
use super::ConfigError;

/// `ROUGHY_WEBHOOK_TIMEOUT_SECS`: 1 to 60 s.
const TIMEOUT: SecsRange = SecsRange { min: 1, max: 60 };
/// `ROUGHY_WEBHOOK_RETRY_DELAY_SECS`: 1 s to 1 h.
const RETRY_DELAY: SecsRange = SecsRange { min: 1, max: 3_600 };

/// The transport's settings and the retry pace.
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// `ROUGHY_WEBHOOK_TIMEOUT_SECS` (10, 1 to 60): how long one attempt may take;
    /// `ROUGHY_WEBHOOK_ALLOW_PRIVATE` (0): also deliver to private, loopback and link-local
    /// addresses (receivers on the same host or network).
    pub transport: TransportSettings,
    /// `ROUGHY_WEBHOOK_RETRY_DELAY_SECS` (30, 1 to 3600): the wait before the first retry;
    /// each further retry waits twice as long, at most an hour, for 24 hours.
    pub retry_delay: time::Duration,
}

impl WebhooksConfig {
    /// Reads and checks the section.
    ///
    /// # Errors
    /// A `ConfigError` naming the first bad variable.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let timeout = env.secs("ROUGHY_WEBHOOK_TIMEOUT_SECS", 10, TIMEOUT)?;
        let retry_delay = env.secs("ROUGHY_WEBHOOK_RETRY_DELAY_SECS", 30, RETRY_DELAY)?;
        Ok(Self {
            transport: TransportSettings {
                timeout,
                allow_private: env.flag("ROUGHY_WEBHOOK_ALLOW_PRIVATE", false)?,
            },
            retry_delay: time::Duration::try_from(retry_delay).unwrap_or(time::Duration::HOUR),
        })
    }

    /// How long a claimed delivery is left to its worker before another may send it (a
    /// worker that died mid-attempt): twice an attempt's timeout and 5 s more, so a live
    /// worker always records its attempt first.
    pub fn lease(&self) -> time::Duration {
        time::Duration::try_from(self.transport.timeout * 2 + std::time::Duration::from_secs(5))
            .unwrap_or(time::Duration::MINUTE)
    }
}
