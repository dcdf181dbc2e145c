//! The OAuth 2.0 pieces both fakes' authorization servers follow alike:
//!
//! * PKCE with S256 (<https://www.rfc-editor.org/rfc/rfc7636>): the
//!   transform, and the alphabet and length of verifiers and challenges;
//! * client authentication (RFC 6749 section 2.3.1): an
//!   `Authorization: Basic` header, whose parts are form-encoded before
//!   base64, or `client_id` and `client_secret` in the form;
//! * bearer tokens in the `Authorization` header (RFC 6750 section 2.1);
//! * codes and tokens as random strings, and redirect URIs that already
//!   carry a query.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hyper::header::{AUTHORIZATION, HeaderMap};
use sha2::{Digest, Sha256};

/// The PKCE S256 transform: BASE64URL(SHA256(verifier)) without padding.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636's alphabet and length for verifiers and challenges.
pub fn is_pkce_string(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `prefix` and `bytes` random bytes in base64url without padding: a code or
/// a token nobody can guess.
pub fn random_token(prefix: &str, bytes: usize) -> String {
    let mut random = vec![0; bytes];
    rand::fill(random.as_mut_slice());
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random))
}

/// Appends query parameters to a redirect URI that may already have some.
pub fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{query}")
}

/// The `Authorization: Bearer` token of a request, if it has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Client credentials from a request's `Authorization: Basic` header, whose
/// parts are form-encoded before base64.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unform = |part: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={part}"))
            .ok()
            .and_then(|mut pairs| pairs.pop())
            .map(|(_, value)| value)
    };
    Some((unform(id)?, unform(secret)?))
}

/// The client id and secret a token request presents: those of its
/// `Authorization: Basic` header when it had one (`basic`), else the form's
/// `client_id` and `client_secret` as `form` finds them.
pub fn client_credentials<'a>(
    basic: Option<(String, String)>,
    form: impl Fn(&str) -> Option<&'a str>,
) -> (Option<String>, Option<String>) {
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (
            form("client_id").map(str::to_owned),
            form("client_secret").map(str::to_owned),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn pkce_strings_have_rfc_7636s_alphabet_and_length() {
        assert!(is_pkce_string(&"a-._~".repeat(9)));
        assert!(!is_pkce_string(&"a".repeat(42)));
        assert!(!is_pkce_string(&"a".repeat(129)));
        assert!(!is_pkce_string(&format!("{}+", "a".repeat(42))));
    }

    #[test]
    fn random_tokens_are_prefixed_and_fresh() {
        let token = random_token("1.A", 48);
        assert_eq!(token.len(), 3 + 64);
        assert!(token.starts_with("1.A"));
        assert_ne!(token, random_token("1.A", 48));
    }

    #[test]
    fn redirect_uris_keep_their_query() {
        let pairs = [("code", "a b"), ("state", "x")];
        assert_eq!(
            with_query("https://app.test/cb", &pairs),
            "https://app.test/cb?code=a+b&state=x"
        );
        assert_eq!(
            with_query("https://app.test/cb?v=1", &pairs),
            "https://app.test/cb?v=1&code=a+b&state=x"
        );
    }

    #[test]
    fn bearer_tokens_take_any_case_of_the_scheme() {
        assert_eq!(
            bearer_token(&authorization("bearer  abc ")),
            Some("abc".to_owned())
        );
        assert_eq!(bearer_token(&authorization("Basic abc")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20client:s%3Acret"));
        assert_eq!(
            basic_credentials(&authorization(&header)),
            Some(("my client".to_owned(), "s:cret".to_owned()))
        );
        assert_eq!(basic_credentials(&authorization("Bearer abc")), None);
    }

    #[test]
    fn a_basic_header_outranks_the_form() {
        let form = |name: &str| Some(if name == "client_id" { "id" } else { "secret" });
        assert_eq!(
            client_credentials(None, form),
            (Some("id".to_owned()), Some("secret".to_owned()))
        );
        let basic = Some(("basic-id".to_owned(), "basic-secret".to_owned()));
        assert_eq!(
            client_credentials(basic, form),
            (Some("basic-id".to_owned()), Some("basic-secret".to_owned()))
        );
    }
}
