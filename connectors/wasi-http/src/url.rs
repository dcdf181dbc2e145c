//! The API's base URL as `provider.api-url` gives it, the links the API hands out on it, and
//! the percent-encoding of the paths and query strings built on it.

/// Where the API is: `{scheme}://{authority}{prefix}/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub https: bool,
    /// `host` or `host:port`, as the URL wrote it.
    pub authority: String,
    /// A path before the API's own paths, without a trailing slash; usually empty.
    pub prefix: String,
}

impl Base {
    /// The path and query after the base's own path of a link the API handed out (an OData
    /// `@odata.nextLink`), taken as given; refused when it leads anywhere but this base.
    pub fn own_link(&self, link: &str) -> Result<String, String> {
        let scheme = if self.https { "https://" } else { "http://" };
        let rest = strip_prefix_ignore_case(link, scheme)
            .ok_or_else(|| format!("the link {link} leaves the API"))?;
        let at = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(at);
        if !authority.eq_ignore_ascii_case(&self.authority) {
            return Err(format!("the link {link} leaves the API"));
        }
        let path = path.split('#').next().unwrap_or_default();
        let Some(rest) = path
            .strip_prefix(&self.prefix)
            .filter(|r| r.starts_with('/'))
        else {
            return Err(format!("the link {link} leaves the API"));
        };
        if rest.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!("the link {link} is not a valid path"));
        }
        Ok(rest.to_owned())
    }
}

/// Parses a base URL: `https://` anywhere, `http://` only for a loopback host (a test
/// server on this machine).
pub fn parse_base(url: &str) -> Result<Base, String> {
    let url = url.trim();
    let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
        (true, rest)
    } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
        (false, rest)
    } else {
        return Err(format!("the API URL {url} is not an http(s) URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("the API URL {url} names no host"));
    }
    if path.contains('?') || path.contains('#') || authority.contains(['?', '#']) {
        return Err(format!("the API URL {url} carries a query or a fragment"));
    }
    if !https && !is_loopback(authority) {
        return Err(format!(
            "the API URL {url} is plain HTTP to a host other than this machine"
        ));
    }
    Ok(Base {
        https,
        authority: authority.to_owned(),
        prefix: path.trim_end_matches('/').to_owned(),
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Whether an authority (`host[:port]`) names this machine.
fn is_loopback(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Everything but RFC 3986's unreserved characters.
const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986's unreserved characters, for a query value or a
/// path segment.
pub fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, RESERVED).to_string()
}

/// `?name=value&…` (values encoded), or nothing for no pairs.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        out.push(if out.is_empty() { '?' } else { '&' });
        out.push_str(name);
        out.push('=');
        out.push_str(&encode(value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_parse_with_their_scheme_and_port() {
        assert_eq!(
            parse_base("https://gmail.googleapis.com"),
            Ok(Base {
                https: true,
                authority: "gmail.googleapis.com".into(),
                prefix: String::new(),
            })
        );
        assert_eq!(
            parse_base("https://127.0.0.1:8443/"),
            Ok(Base {
                https: true,
                authority: "127.0.0.1:8443".into(),
                prefix: String::new(),
            })
        );
        assert_eq!(
            parse_base("http://127.0.0.1:9000/proxy/").map(|b| (b.https, b.prefix)),
            Ok((false, "/proxy".into()))
        );
        assert!(parse_base("http://localhost:1").is_ok());
        assert!(parse_base("http://[::1]:1").is_ok());
    }

    #[test]
    fn foreign_or_odd_bases_are_refused() {
        assert!(parse_base("http://gmail.googleapis.com").is_err());
        assert!(parse_base("http://127.0.0.2.example.com").is_err());
        assert!(parse_base("ftp://example.com").is_err());
        assert!(parse_base("https://").is_err());
        assert!(parse_base("https://user@example.com").is_err());
        assert!(parse_base("https://example.com/?x=1").is_err());
    }

    #[test]
    fn links_are_taken_as_given_on_the_base_only() {
        let base = parse_base("https://graph.example:8443").unwrap();
        let link =
            "https://GRAPH.example:8443/v1.0/me/mailFolders/AQ==/messages/delta?$deltatoken=a%2Bb";
        assert_eq!(
            base.own_link(link).as_deref(),
            Ok("/v1.0/me/mailFolders/AQ==/messages/delta?$deltatoken=a%2Bb")
        );
        assert!(base.own_link("https://graph.example/v1.0/me").is_err());
        assert!(base.own_link("http://graph.example:8443/v1.0/me").is_err());
        assert!(
            base.own_link("https://graph.example:8443.evil/v1.0")
                .is_err()
        );
        assert!(
            base.own_link("https://graph.example:8443@evil/v1.0")
                .is_err()
        );
        assert!(base.own_link("https://graph.example:8443/a b").is_err());
        let proxied = parse_base("https://proxy.example/graph").unwrap();
        assert_eq!(
            proxied
                .own_link("https://proxy.example/graph/v1.0/me")
                .as_deref(),
            Ok("/v1.0/me")
        );
        assert!(
            proxied
                .own_link("https://proxy.example/other/v1.0/me")
                .is_err()
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("after:1700000000"), "after%3A1700000000");
        assert_eq!(encode("rfc822msgid:a+b@c d"), "rfc822msgid%3Aa%2Bb%40c%20d");
        assert_eq!(encode("Label_1-x.y~z"), "Label_1-x.y~z");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(
            query(&[("labelIds", "INBOX"), ("q", "after:5")]),
            "?labelIds=INBOX&q=after%3A5"
        );
        assert_eq!(query(&[]), "");
    }
}
