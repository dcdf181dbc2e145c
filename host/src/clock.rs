//! Times as Mailroom writes them: RFC 3339 in UTC.

/// Now, as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

pub fn rfc3339(at: time::OffsetDateTime) -> String {
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A Unix time in seconds as RFC 3339 UTC.
pub fn rfc3339_unix(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(rfc3339)
        .unwrap_or_default()
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A time in milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds: for times
/// clients compare (`requested_at` and `last_sync_at`), where a second is too coarse.
pub fn rfc3339_millis(millis: i64) -> String {
    let text = rfc3339_unix(millis.div_euclid(1000));
    match text.strip_suffix('Z') {
        Some(base) => format!("{base}.{:03}Z", millis.rem_euclid(1000)),
        None => text,
    }
}

/// The wait before retrying after `failures` failures in a row (at least one): `first`
/// seconds, doubled with each further failure up to `max` seconds, give or take a fifth so
/// that what failed together does not come back together.
pub fn backoff(first: f64, max: f64, failures: u32) -> std::time::Duration {
    let doublings = failures.saturating_sub(1).min(30) as i32;
    let base = (first * 2f64.powi(doublings)).min(max);
    std::time::Duration::from_secs_f64(base * (0.8 + rand::random::<f64>() * 0.4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_times_keep_three_digits_so_they_compare_as_text() {
        assert_eq!(
            rfc3339_millis(1_800_000_000_007),
            "2027-01-15T08:00:00.007Z"
        );
        assert_eq!(
            rfc3339_millis(1_800_000_000_000),
            "2027-01-15T08:00:00.000Z"
        );
        assert!(rfc3339_millis(1_800_000_000_999) < rfc3339_millis(1_800_000_001_000));
    }
}
