//! `expiry_after` never overflows: a TTL too large for the calendar saturates at the latest
//! instant `time` can represent instead of panicking inside a request handler.

use roughy_domain::tus::expiry_after;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

#[test]
fn an_ordinary_ttl_is_added() {
    let now = datetime!(2026-01-01 0:00 UTC);
    assert_eq!(
        expiry_after(now, Duration::hours(48)),
        datetime!(2026-01-03 0:00 UTC)
    );
}

#[test]
fn a_ttl_past_the_calendar_saturates_instead_of_panicking() {
    let now = datetime!(2026-01-01 0:00 UTC);
    let latest = now.saturating_add(Duration::MAX);
    assert!(latest > now);
    assert_eq!(expiry_after(now, Duration::MAX), latest);
    assert_eq!(expiry_after(now, Duration::seconds(i64::MAX)), latest);
    assert!(
        expiry_after(OffsetDateTime::UNIX_EPOCH, Duration::days(30)) > OffsetDateTime::UNIX_EPOCH
    );
}
