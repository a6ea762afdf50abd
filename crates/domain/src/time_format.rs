//! Wire formats of instants: RFC 3339 with milliseconds and `Z`, and the HTTP-date.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

const RFC3339_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
const IMF_FIXDATE: &[FormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// `2026-11-23T10:15:00.123Z`.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(RFC3339_MILLIS)
        .unwrap_or_default()
}

/// `Wed, 25 Jun 2014 16:00:00 GMT` (RFC 9110 IMF-fixdate).
pub fn http_date(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(IMF_FIXDATE)
        .unwrap_or_default()
}

/// Truncates to whole microseconds, the precision every repository keeps.
pub fn to_micros(at: OffsetDateTime) -> OffsetDateTime {
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_match_the_contract() {
        let at = datetime!(2014-06-25 16:00:00.123456 UTC);
        assert_eq!(rfc3339(at), "2014-06-25T16:00:00.123Z");
        assert_eq!(http_date(at), "Wed, 25 Jun 2014 16:00:00 GMT");
        assert_eq!(to_micros(at).nanosecond(), 123_456_000);
    }
}
