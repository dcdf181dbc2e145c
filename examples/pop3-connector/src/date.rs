//! The `Date:` header of a message (RFC 5322 section 3.3), as seconds since the Unix epoch:
//! POP3 has no arrival time, so the message's own date stands in for it.

/// The date in `headers` (a message or its header block), when it has a readable one.
pub fn of_headers(headers: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(headers);
    let mut value: Option<String> = None;
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        if line.is_empty() {
            break;
        }
        match &mut value {
            // A folded continuation of the Date header.
            Some(value) if line.starts_with([' ', '\t']) => value.push_str(line),
            Some(_) => break,
            None => {
                if let Some((name, rest)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("date")
                {
                    value = Some(rest.to_owned());
                }
            }
        }
    }
    parse(&value?)
}

/// `[day-name ","] day month year hour ":" minute [":" second] zone`.
pub fn parse(value: &str) -> Option<i64> {
    let value = value.split('(').next()?;
    let mut words = value.split_whitespace().peekable();
    if words.peek()?.ends_with(',') {
        words.next();
    }
    let day: i64 = words.next()?.parse().ok()?;
    let month = words.next()?.to_ascii_lowercase();
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| month.starts_with(m))? as i64
        + 1;
    let mut year: i64 = words.next()?.parse().ok()?;
    // Obsolete two-digit years (RFC 5322 section 4.3).
    if year < 50 {
        year += 2000;
    } else if year < 1000 {
        year += 1900;
    }
    let mut time = words.next()?.split(':');
    let hour: i64 = time.next()?.parse().ok()?;
    let minute: i64 = time.next()?.parse().ok()?;
    let second: i64 = time.next().map_or(Some(0), |s| s.parse().ok())?;
    let zone = zone_seconds(words.next().unwrap_or("+0000"));
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - zone)
}

/// `+hhmm`/`-hhmm`; the obsolete names of section 4.3 count as UTC but for the US zones.
fn zone_seconds(zone: &str) -> i64 {
    let bytes = zone.as_bytes();
    if bytes.len() == 5 && (bytes[0] == b'+' || bytes[0] == b'-') {
        let hours: i64 = zone[1..3].parse().unwrap_or(0);
        let minutes: i64 = zone[3..5].parse().unwrap_or(0);
        let offset = hours * 3600 + minutes * 60;
        return if bytes[0] == b'-' { -offset } else { offset };
    }
    let hours = match zone.to_ascii_uppercase().as_str() {
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        _ => 0,
    };
    hours * 3600
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Now, for a message without a readable date.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_every_shape_are_read() {
        assert_eq!(parse("Thu, 01 Jan 1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse("Tue, 1 Jul 2003 10:52:37 +0200"), Some(1_057_049_557));
        assert_eq!(parse(" 29 Feb 2024 23:59 -0100 (odd)"), Some(1_709_254_740));
        assert_eq!(parse("1 Jan 70 00:00:00 GMT"), Some(0));
        assert_eq!(parse("not a date"), None);
        let headers = b"Subject: x\r\nDate: Thu, 01 Jan\r\n 1970 00:01:00 +0000\r\n\r\nDate: body";
        assert_eq!(of_headers(headers), Some(60));
    }
}
