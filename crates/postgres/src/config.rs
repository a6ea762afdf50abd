//! The adapter's configuration: where the database is and how the pool behaves.

use std::fmt;
use std::time::Duration;

/// How to reach PostgreSQL and how to size and time the connection pool.
///
/// Every field has a default fit for one server process ([`PgConfig::new`]); the `server`
/// crate reads the environment and overrides what it needs.
#[derive(Clone)]
pub struct PgConfig {
    /// A `postgres://` URL. For a unix socket, put the percent-encoded socket directory in the
    /// host part (`postgres://roughy@%2Frun%2Fpg/roughy`). May carry a password, so `Debug`
    /// never prints it.
    pub url: String,
    /// The most connections open at once.
    pub max_size: usize,
    /// How long a caller waits for a free connection before the call fails as unavailable.
    pub wait_timeout: Duration,
    /// How long opening a new connection may take.
    pub create_timeout: Duration,
    /// How long checking a pooled connection before reuse may take.
    pub recycle_timeout: Duration,
    /// The server cancels any statement running longer (`SET statement_timeout`).
    pub statement_timeout: Duration,
}

impl PgConfig {
    /// Default pool size.
    pub const DEFAULT_MAX_SIZE: usize = 16;
    /// Default wait for a free connection.
    pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default time to open a connection.
    pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default time to check a connection before reuse.
    pub const DEFAULT_RECYCLE_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default statement timeout.
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(15);

    /// The defaults, for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_size: Self::DEFAULT_MAX_SIZE,
            wait_timeout: Self::DEFAULT_WAIT_TIMEOUT,
            create_timeout: Self::DEFAULT_CREATE_TIMEOUT,
            recycle_timeout: Self::DEFAULT_RECYCLE_TIMEOUT,
            statement_timeout: Self::DEFAULT_STATEMENT_TIMEOUT,
        }
    }

    /// The same configuration with another pool size.
    pub fn with_max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact(&self.url))
            .field("max_size", &self.max_size)
            .field("wait_timeout", &self.wait_timeout)
            .field("create_timeout", &self.create_timeout)
            .field("recycle_timeout", &self.recycle_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// The URL with any password replaced, for logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsed url>".into();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_password() {
        let config = PgConfig::new("postgres://app:s3cret@db.example:5432/roughy?sslmode=off");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.example:5432/roughy?sslmode=off"));
        assert_eq!(
            redact("postgres://roughy@%2Ftmp%2Fx/roughy"),
            "postgres://roughy@%2Ftmp%2Fx/roughy"
        );
    }
}
