//! The ports: what the use cases need from the outside world.
//!
//! Repository ports are shaped around use cases: every use case that must be atomic is one
//! method, so an adapter can run it in one transaction and call the pure `roughy_domain` rule
//! inside (the rule lives once; the atomicity lives in the adapter).
//!
//! One module per seam; everything is re-exported here, so a port is `ports::Name`.

mod bytes;
mod errors;
mod health;
mod idempotency;
mod links;
mod locks;
mod media;
mod metrics;
mod repositories;
mod webhooks;

pub use self::bytes::*;
pub use self::errors::*;
pub use self::health::*;
pub use self::idempotency::*;
pub use self::links::*;
pub use self::locks::*;
pub use self::media::*;
pub use self::metrics::*;
pub use self::repositories::*;
pub use self::webhooks::*;
