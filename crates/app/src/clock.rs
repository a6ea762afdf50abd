//! The clock port: injected so tests control time (expiry, link lifetimes) without sleeping.

use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// Tells the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that follows the system clock plus an offset that tests can move forward.
#[derive(Debug, Default)]
pub struct ManualClock {
    skew: Mutex<Duration>,
}

impl ManualClock {
    /// A clock at the system time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut skew) = self.skew.lock() {
            *skew += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let skew = self.skew.lock().map(|s| *s).unwrap_or_default();
        OffsetDateTime::now_utc() + skew
    }
}
