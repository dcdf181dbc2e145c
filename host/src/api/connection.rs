//! Connection bodies, shared by `POST /v1/accounts/test`, `POST /v1/accounts` and
//! `POST /v1/accounts/{id}/reconnect` (docs/api.md, "Accounts"): the connector, the mailbox's
//! login and one block per server role the connector declares. Which roles those are is the
//! connector's to say, so the blocks are read once the connector is known; what is left is
//! the surrounding request's to read, and refuse when unknown.

use super::body;
use super::error::ApiError;
use crate::account::{ConnectionSpec, normalize_host, validate_email};
use crate::endpoint::{Encryption, ServerSpec};
use crate::secret::Secret;
use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct ConnectionBody {
    connector: Option<String>,
    email: Option<String>,
    password: Option<String>,
    username: Option<String>,
    allow_insecure_certificate: Option<bool>,
    settings: Option<Map<String, Value>>,
    /// Server blocks, and the fields of the surrounding request.
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerBody {
    host: Option<String>,
    port: Option<Port>,
    encryption: Option<Encryption>,
}

struct Port(u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer)?
            .as_u64()
            .and_then(|port| u16::try_from(port).ok())
            .filter(|port| *port > 0)
            .map(Port)
            .ok_or_else(|| D::Error::custom("must be a whole number from 1 to 65535"))
    }
}

/// Most entries of `settings`, and their longest key and value in bytes.
const MAX_SETTINGS: usize = 64;
const MAX_SETTING_KEY: usize = 64;
const MAX_SETTING_VALUE: usize = 4096;

/// Reads the connection in `body`. `server_roles` gives the server blocks a connector
/// declares, or `None` for a connector that is not loaded. Returns the connection and the
/// body's other fields.
pub fn parse(
    body: &Value,
    server_roles: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<(ConnectionSpec, Value), ApiError> {
    let fields: ConnectionBody = body::parse(body)?;
    let connector = fields
        .connector
        .ok_or_else(|| ApiError::invalid("connector", "is required"))?;
    let roles = server_roles(&connector).ok_or_else(|| {
        ApiError::invalid("connector", format!("unknown connector `{connector}`"))
    })?;
    let email = fields
        .email
        .ok_or_else(|| ApiError::invalid("email", "is required"))?;
    validate_email(&email).map_err(|m| ApiError::invalid("email", m))?;
    let password = match fields.password {
        Some(password) if password.is_empty() => {
            return Err(ApiError::invalid("password", "must not be empty"));
        }
        password => password.map(Secret::new),
    };
    if let Some(username) = &fields.username
        && (username.is_empty() || username.len() > 320 || username.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "username",
            "must be 1-320 characters without control characters",
        ));
    }
    let settings = settings(fields.settings.unwrap_or_default())?;
    let mut rest = fields.rest;
    let servers = roles
        .iter()
        .map(|role| server(role, rest.remove(role.as_str())))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = ConnectionSpec {
        connector,
        email,
        username: fields.username,
        password,
        servers,
        allow_insecure_certificate: fields.allow_insecure_certificate.unwrap_or(false),
        settings,
        bearer: None,
        api_url: None,
    };
    Ok((spec, Value::Object(rest)))
}

fn server(role: &str, block: Option<Value>) -> Result<ServerSpec, ApiError> {
    let block = match block {
        None | Some(Value::Null) => return Err(ApiError::invalid(role, "is required")),
        Some(block) => block,
    };
    let fields: ServerBody = body::parse_at(role, &block)?;
    let field = |name: &str| format!("{role}.{name}");
    let host = fields
        .host
        .ok_or_else(|| ApiError::invalid(field("host"), "is required"))?;
    let host = normalize_host(host.trim()).map_err(|m| ApiError::invalid(field("host"), m))?;
    Ok(ServerSpec {
        role: role.to_owned(),
        host,
        port: fields
            .port
            .ok_or_else(|| ApiError::invalid(field("port"), "is required"))?
            .0,
        encryption: fields
            .encryption
            .ok_or_else(|| ApiError::invalid(field("encryption"), "is required"))?,
    })
}

/// A connector's settings as text: strings as they are, numbers and booleans written out.
fn settings(object: Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    if object.len() > MAX_SETTINGS {
        return Err(ApiError::invalid(
            "settings",
            format!("has more than {MAX_SETTINGS} entries"),
        ));
    }
    object
        .into_iter()
        .map(|(key, value)| {
            let field = || format!("settings.{key}");
            let text = match value {
                Value::String(s) => s,
                Value::Bool(_) | Value::Number(_) => value.to_string(),
                _ => {
                    return Err(ApiError::invalid(
                        field(),
                        "must be a string, number or boolean",
                    ));
                }
            };
            if key.len() > MAX_SETTING_KEY || text.len() > MAX_SETTING_VALUE {
                return Err(ApiError::invalid(field(), "is too long"));
            }
            Ok((key, text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roles(connector: &str) -> Option<Vec<String>> {
        (connector == "imap").then(|| vec!["imap".to_owned(), "smtp".to_owned()])
    }

    fn body() -> Value {
        json!({
            "connector": "imap",
            "email": "alice@example.com",
            "password": "pw",
            "imap": {"host": "mail.example.com", "port": 993, "encryption": "ssl"},
            "smtp": {"host": "mail.example.com", "port": 587, "encryption": "starttls"},
        })
    }

    /// Refuses whatever `rest` holds, as a request with nothing besides the connection would.
    fn nothing_else(rest: &Value) -> Result<(), ApiError> {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Nothing {}
        body::parse::<Nothing>(rest).map(|_| ())
    }

    fn error_field(body: Value) -> String {
        let error = parse(&body, roles)
            .and_then(|(_, rest)| nothing_else(&rest))
            .unwrap_err();
        error.field.expect("a field")
    }

    #[test]
    fn a_complete_body_parses_and_leaves_the_rest() {
        let mut b = body();
        b["kind"] = json!("shared");
        let (spec, rest) = parse(&b, roles).unwrap();
        assert_eq!(spec.login(), "alice@example.com");
        assert_eq!(
            spec.server("smtp").unwrap().encryption,
            Encryption::Starttls
        );
        assert_eq!(spec.server("imap").unwrap().port, 993);
        assert_eq!(rest, json!({"kind": "shared"}));
    }

    #[test]
    fn each_mistake_names_its_field() {
        type Change = fn(&mut Value);
        let cases: Vec<(&str, Change)> = vec![
            ("imap.port", |b| b["imap"]["port"] = json!(70000)),
            ("imap.port", |b| b["imap"]["port"] = json!("993")),
            ("imap.tls", |b| b["imap"]["tls"] = json!(true)),
            ("smtp.encryption", |b| {
                b["smtp"]["encryption"] = json!("tls")
            }),
            ("email", |b| b["email"] = json!("not-an-address")),
            ("email", |b| b["email"] = json!(5)),
            ("connector", |b| b["connector"] = json!("pop3")),
            ("colour", |b| b["colour"] = json!("red")),
            ("smtp", |b| {
                b.as_object_mut().unwrap().remove("smtp");
            }),
            ("smtp", |b| b["smtp"] = json!("mail.example.com")),
            ("imap.host", |b| {
                b["imap"]["host"] = json!("169.254.169.254")
            }),
            ("imap.host", |b| b["imap"]["host"] = json!("bad host name")),
            ("imap.host", |b| b["imap"]["host"] = json!("[10.0.0.1")),
            ("settings.folder", |b| b["settings"] = json!({"folder": []})),
            ("allow_insecure_certificate", |b| {
                b["allow_insecure_certificate"] = json!("yes")
            }),
        ];
        for (field, change) in cases {
            let mut b = body();
            change(&mut b);
            assert_eq!(error_field(b), field);
        }
    }

    #[test]
    fn loopback_and_private_servers_are_accepted() {
        let mut b = body();
        b["imap"]["host"] = json!("127.0.0.1");
        b["smtp"]["host"] = json!("[::1]");
        let (spec, _) = parse(&b, roles).unwrap();
        assert_eq!(spec.server("smtp").unwrap().host, "::1");
    }
}
