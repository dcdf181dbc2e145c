//! The parts of a request both fakes read alike: query and form parameters
//! (`application/x-www-form-urlencoded`, in the order sent) and
//! percent-decoded path segments.

use hyper::Uri;

/// Form or query parameters, in the order sent.
pub type Params = [(String, String)];

/// The first value of a parameter, its name matched exactly.
pub fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The query parameters of a request URI; none when it has no query or the
/// query does not parse.
pub fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .and_then(|query| serde_urlencoded::from_str(query).ok())
        .unwrap_or_default()
}

/// The parameters of a form body; `None` when it does not parse.
pub fn form_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    serde_urlencoded::from_bytes(body).ok()
}

/// Decodes `%XX` escapes of a path segment.
pub fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(
            percent_decode("ann%2Btag%40example.com"),
            "ann+tag@example.com"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn queries_and_forms_keep_order_and_repeats() {
        let uri: Uri = "/path?b=2&a=1&b=%20three".parse().unwrap();
        let pairs = query_pairs(&uri);
        assert_eq!(
            pairs,
            [("b", "2"), ("a", "1"), ("b", " three")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(param(&pairs, "b"), Some("2"));
        assert_eq!(param(&pairs, "B"), None);
        assert!(query_pairs(&"/path".parse().unwrap()).is_empty());
        assert_eq!(form_pairs(b"x=1+2&y=%3D").unwrap()[1].1, "=");
    }
}
