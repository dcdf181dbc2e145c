//! The OData pieces of a Graph request: the `Prefer` header, `$select`,
//! `$top`/`$skip`, the delta function's `$filter` and `$orderby`, and Graph's
//! date-time format (ISO 8601 in UTC, `2024-01-31T09:30:00Z`).
//!
//! References: <https://learn.microsoft.com/en-us/graph/query-parameters>,
//! <https://learn.microsoft.com/en-us/graph/delta-query-messages> (the
//! filters and orders delta supports), <https://learn.microsoft.com/en-us/graph/outlook-immutable-id>
//! (`Prefer: IdType="ImmutableId"`).

use hyper::header::{HeaderMap, HeaderValue};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

pub(crate) use mailroom_fake_https::request::Params;

use crate::error::GraphError;

/// The first value of a parameter; OData option names (`$top`) match
/// without regard to case.
pub(crate) fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// What the `Prefer` headers ask for. A request may send several
/// comma-separated preferences in one header, or several headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Prefer {
    /// `IdType="ImmutableId"`.
    pub immutable_ids: bool,
    /// `odata.maxpagesize=N`.
    pub max_page_size: Option<usize>,
}

impl Prefer {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Prefer {
        let mut prefer = Prefer::default();
        for value in headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            for preference in value.split(',') {
                let Some((name, value)) = preference.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "idtype" => prefer.immutable_ids = value.eq_ignore_ascii_case("ImmutableId"),
                    "odata.maxpagesize" => prefer.max_page_size = value.parse().ok(),
                    _ => {}
                }
            }
        }
        prefer
    }

    /// The `Preference-Applied` header for what was honoured, if anything.
    pub(crate) fn applied(&self, page_size: Option<usize>) -> Option<HeaderValue> {
        let mut applied = Vec::new();
        if let Some(size) = page_size {
            applied.push(format!("odata.maxpagesize={size}"));
        }
        if self.immutable_ids {
            applied.push("IdType=\"ImmutableId\"".to_owned());
        }
        if applied.is_empty() {
            return None;
        }
        applied.join(", ").parse().ok()
    }
}

/// A non-negative integer option such as `$top` or `$skip`.
pub(crate) fn count_option(params: &Params, name: &str) -> Result<Option<usize>, GraphError> {
    match param(params, name) {
        None => Ok(None),
        Some(value) => value.trim().parse().map(Some).map_err(|_| {
            GraphError::bad_request(format!(
                "Invalid value '{value}' for query option '{name}'."
            ))
        }),
    }
}

/// `$select`, split and trimmed; `None` when absent or empty.
pub(crate) fn select(params: &Params) -> Option<Vec<String>> {
    let list: Vec<String> = param(params, "$select")?
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    (!list.is_empty()).then_some(list)
}

/// A `receivedDateTime` filter: `ge` or `gt` a moment, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ReceivedFilter {
    pub strict: bool,
    pub ms: i64,
}

impl ReceivedFilter {
    /// Parses the only two `$filter` forms the delta function supports:
    /// `receivedDateTime ge {value}` and `receivedDateTime gt {value}`.
    pub(crate) fn parse(filter: &str) -> Result<ReceivedFilter, GraphError> {
        let words: Vec<&str> = filter.split_whitespace().collect();
        let [property, operator, value] = words.as_slice() else {
            return Err(GraphError::invalid_filter());
        };
        if !property.eq_ignore_ascii_case("receivedDateTime") {
            return Err(GraphError::invalid_filter());
        }
        let strict = match operator.to_ascii_lowercase().as_str() {
            "ge" => false,
            "gt" => true,
            _ => return Err(GraphError::invalid_filter()),
        };
        let ms =
            parse_date_time(value.trim_matches('\'')).ok_or_else(GraphError::invalid_filter)?;
        Ok(ReceivedFilter { strict, ms })
    }

    pub(crate) fn admits(&self, received_ms: i64) -> bool {
        if self.strict {
            received_ms > self.ms
        } else {
            received_ms >= self.ms
        }
    }

    /// The filter as a `$filter` value, for a link that starts over.
    pub(crate) fn to_query(self) -> String {
        let operator = if self.strict { "gt" } else { "ge" };
        format!("receivedDateTime {operator} {}", format_date_time(self.ms))
    }
}

/// A message list's `$filter`: comparisons of `receivedDateTime` with `ge`, `gt`, `le` or
/// `lt`, joined by `and` (the list serves more of OData than the delta function does; the
/// fake, only this).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReceivedRange {
    bounds: Vec<(&'static str, i64)>,
}

impl ReceivedRange {
    pub(crate) fn parse(filter: &str) -> Result<ReceivedRange, GraphError> {
        let mut bounds = Vec::new();
        let words: Vec<&str> = filter.split_whitespace().collect();
        for (i, clause) in words.split(|w| w.eq_ignore_ascii_case("and")).enumerate() {
            let [property, operator, value] = clause else {
                return Err(GraphError::invalid_filter());
            };
            if !property.eq_ignore_ascii_case("receivedDateTime") || i > 7 {
                return Err(GraphError::invalid_filter());
            }
            let operator = match operator.to_ascii_lowercase().as_str() {
                "ge" => "ge",
                "gt" => "gt",
                "le" => "le",
                "lt" => "lt",
                _ => return Err(GraphError::invalid_filter()),
            };
            let ms =
                parse_date_time(value.trim_matches('\'')).ok_or_else(GraphError::invalid_filter)?;
            bounds.push((operator, ms));
        }
        Ok(ReceivedRange { bounds })
    }

    pub(crate) fn admits(&self, received_ms: i64) -> bool {
        self.bounds.iter().all(|&(operator, ms)| match operator {
            "ge" => received_ms >= ms,
            "gt" => received_ms > ms,
            "le" => received_ms <= ms,
            _ => received_ms < ms,
        })
    }
}

/// Whether `$orderby` asks for newest first; the delta function supports
/// only `receivedDateTime desc`.
pub(crate) fn received_descending(params: &Params) -> Result<bool, GraphError> {
    let Some(order) = param(params, "$orderby") else {
        return Ok(false);
    };
    let words: Vec<&str> = order.split_whitespace().collect();
    match words.as_slice() {
        [property, direction]
            if property.eq_ignore_ascii_case("receivedDateTime")
                && direction.eq_ignore_ascii_case("desc") =>
        {
            Ok(true)
        }
        _ => Err(GraphError::bad_request(format!(
            "The $orderby expression '{order}' is not supported; only 'receivedDateTime desc' is."
        ))),
    }
}

/// Milliseconds since the epoch as Graph writes them: UTC, whole seconds.
pub(crate) fn format_date_time(ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|moment| moment.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// The `innerError.date` of an error body: UTC without the zone letter.
pub(crate) fn format_error_date(ms: i64) -> String {
    let mut text = format_date_time(ms);
    text.pop();
    text
}

/// An ISO 8601 date-time (with a zone or an offset; without one it is UTC)
/// or a bare date, in milliseconds since the epoch.
pub(crate) fn parse_date_time(text: &str) -> Option<i64> {
    let to_ms =
        |moment: OffsetDateTime| i64::try_from(moment.unix_timestamp_nanos() / 1_000_000).ok();
    if let Ok(moment) = OffsetDateTime::parse(text, &Rfc3339) {
        return to_ms(moment);
    }
    let local = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Ok(moment) = PrimitiveDateTime::parse(text, &local) {
        return to_ms(moment.assume_utc());
    }
    let date = format_description!("[year]-[month]-[day]");
    Date::parse(text, &date)
        .ok()
        .and_then(|day| to_ms(PrimitiveDateTime::new(day, Time::MIDNIGHT).assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_reads_every_header_and_list() {
        let mut headers = HeaderMap::new();
        headers.append(
            "prefer",
            "odata.maxpagesize=3, outlook.body-content-type=\"text\""
                .parse()
                .unwrap(),
        );
        headers.append("Prefer", "IdType=\"ImmutableId\"".parse().unwrap());
        let prefer = Prefer::from_headers(&headers);
        assert_eq!(
            prefer,
            Prefer {
                immutable_ids: true,
                max_page_size: Some(3)
            }
        );
        let mut one = HeaderMap::new();
        one.insert(
            "prefer",
            "IdType=ImmutableId,odata.maxpagesize=7".parse().unwrap(),
        );
        assert_eq!(
            Prefer::from_headers(&one),
            Prefer {
                immutable_ids: true,
                max_page_size: Some(7)
            }
        );
        assert_eq!(Prefer::from_headers(&HeaderMap::new()), Prefer::default());
    }

    #[test]
    fn filters_are_the_two_documented_forms() {
        let ge = ReceivedFilter::parse("receivedDateTime ge 2024-01-31T09:30:00Z").unwrap();
        assert_eq!(ge.ms, 1_706_693_400_000);
        assert!(ge.admits(ge.ms) && !ge.admits(ge.ms - 1));
        let gt = ReceivedFilter::parse("ReceivedDateTime GT 2024-01-31").unwrap();
        assert!(!gt.admits(gt.ms) && gt.admits(gt.ms + 1));
        assert_eq!(ge.to_query(), "receivedDateTime ge 2024-01-31T09:30:00Z");
        for bad in [
            "subject eq 'x'",
            "receivedDateTime lt 2024-01-01T00:00:00Z",
            "receivedDateTime ge yesterday",
            "receivedDateTime ge",
        ] {
            assert!(ReceivedFilter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_list_filters_on_a_range_of_arrival() {
        let range = ReceivedRange::parse(
            "receivedDateTime ge 2024-01-31T00:00:00Z and receivedDateTime lt 2024-02-01T00:00:00Z",
        )
        .unwrap();
        let day = 1_706_659_200_000;
        assert!(range.admits(day) && range.admits(day + 86_399_999));
        assert!(!range.admits(day - 1) && !range.admits(day + 86_400_000));
        for bad in [
            "receivedDateTime ge 2024-01-31 or receivedDateTime lt 2024-02-01",
            "and",
        ] {
            assert!(ReceivedRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn date_times_round_trip() {
        assert_eq!(format_date_time(1_706_693_400_999), "2024-01-31T09:30:00Z");
        assert_eq!(format_error_date(0), "1970-01-01T00:00:00");
        assert_eq!(
            parse_date_time("2024-01-31T10:30:00+01:00"),
            Some(1_706_693_400_000)
        );
        assert_eq!(
            parse_date_time("2024-01-31T09:30:00.250Z"),
            Some(1_706_693_400_250)
        );
        assert_eq!(
            parse_date_time("2024-01-31T09:30:00"),
            Some(1_706_693_400_000)
        );
        assert_eq!(parse_date_time("nonsense"), None);
    }

    #[test]
    fn only_newest_first_is_an_order() {
        let params = |v: &str| vec![("$orderby".to_owned(), v.to_owned())];
        assert_eq!(
            received_descending(&params("receivedDateTime desc")),
            Ok(true)
        );
        assert_eq!(received_descending(&[]), Ok(false));
        assert!(received_descending(&params("subject asc")).is_err());
    }
}
