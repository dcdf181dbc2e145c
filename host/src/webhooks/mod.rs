//! Webhooks after the Standard Webhooks convention (docs/api.md, "Webhooks"): what a
//! signing secret looks like, how a delivery is signed, which URLs may receive events, and
//! the [`Deliverer`] that posts them.

mod deliver;

pub use deliver::Deliverer;

use crate::config::WebhooksConfig;
use crate::endpoint::refused_address_reason;
use crate::net::http::Origin;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::IpAddr;

/// What a secret starts with.
const SECRET_PREFIX: &str = "whsec_";
/// How many random bytes a secret may hold, and how many a generated one holds.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
const GENERATED_SECRET_BYTES: usize = 32;
/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// A new secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; GENERATED_SECRET_BYTES] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The signing key of a secret, or why the secret has not the required form.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or_else(|| format!("must start with `{SECRET_PREFIX}`"))?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| format!("must be `{SECRET_PREFIX}` followed by base64"))?;
    if !SECRET_BYTES.contains(&key.len()) {
        return Err(format!(
            "must carry {} to {} bytes, not {}",
            SECRET_BYTES.start(),
            SECRET_BYTES.end(),
            key.len()
        ));
    }
    Ok(key)
}

/// The `webhook-signature` header of a delivery: `v1,` and the base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` under the secret's key.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Why `url` may not receive events under `config`, if it may not. A name is checked again
/// on every delivery, where it is resolved.
pub fn url_refusal(url: &str, config: &WebhooksConfig) -> Option<String> {
    if url.len() > MAX_URL_LEN {
        return Some(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let Some(origin) = Origin::parse(url) else {
        return Some("must be an absolute http:// or https:// URL".into());
    };
    if origin.host.is_empty() {
        return Some("must name a host".into());
    }
    if !origin.https && !config.allow_http {
        return Some("must use https:// (plain HTTP is turned off)".into());
    }
    let ip = if origin.host == "localhost" {
        Some(IpAddr::from([127, 0, 0, 1]))
    } else {
        origin.host.parse::<IpAddr>().ok()
    };
    ip.and_then(|ip| refused_address_reason(ip, config.allow_private_networks))
        .map(|reason| format!("may not point at {}: {reason}", origin.host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_follows_the_standard_webhooks_example() {
        // The worked example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_whsec_and_base64_of_24_to_64_bytes() {
        let generated = new_secret();
        assert_eq!(secret_key(&generated).unwrap().len(), 32);
        assert_ne!(generated, new_secret());
        for (bad, why) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start"),
            ("whsec_not base64!", "base64"),
            ("whsec_c2hvcnQ=", "24 to 64 bytes, not 5"),
        ] {
            assert!(secret_key(bad).unwrap_err().contains(why), "{bad}");
        }
        let long = format!("whsec_{}", STANDARD.encode([1u8; 65]));
        assert!(secret_key(&long).is_err());
    }

    #[test]
    fn urls_follow_the_network_policy() {
        let open = WebhooksConfig::default();
        let closed = WebhooksConfig {
            allow_http: false,
            allow_private_networks: false,
            ..WebhooksConfig::default()
        };
        assert_eq!(url_refusal("https://crm.example.com/hooks", &closed), None);
        assert_eq!(url_refusal("http://10.1.2.3:8080/hooks", &open), None);
        assert_eq!(url_refusal("http://localhost:8080/hooks", &open), None);
        assert!(url_refusal("http://crm.example.com/hooks", &closed).is_some());
        assert!(url_refusal("https://10.1.2.3/hooks", &closed).is_some());
        assert!(url_refusal("https://localhost/hooks", &closed).is_some());
        for always in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/x",
            "http://[fd00:ec2::254]/x",
        ] {
            assert!(url_refusal(always, &open).is_some(), "{always}");
        }
        assert!(url_refusal("ftp://crm.example.com/", &open).is_some());
        assert!(url_refusal("/relative", &open).is_some());
    }
}
