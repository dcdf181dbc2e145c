//! The connection settings of a mail account, as the CRM sends them.
//!
//! The same body is used to test a connection, to create an account and to re-connect one
//! (docs/api.md, "Accounts"). It is parsed by hand from JSON rather than derived so that every
//! mistake is reported with the path of the offending field (`imap.port`, `email`, ...).

use crate::endpoint::refused_address_reason;
use crate::endpoint::{Encryption, ServerSpec};
use crate::folder::{Folder, FolderId, FolderRole};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::net::IpAddr;

/// Everything needed to reach and log in to an account's servers.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    pub connector: String,
    pub email: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub servers: Vec<ServerSpec>,
    pub allow_insecure_certificate: bool,
    pub settings: Vec<(String, String)>,
}

impl ConnectionSpec {
    /// The name the account logs in with: the configured username, or else the address.
    pub fn login(&self) -> &str {
        self.username.as_deref().unwrap_or(&self.email)
    }

    pub fn server(&self, role: &str) -> Option<&ServerSpec> {
        self.servers.iter().find(|s| s.role == role)
    }
}

/// Who works an account: shared ones (sales@) by admins and members with the shared-inbox
/// permission, personal ones by their owner alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Shared,
    Personal,
}

/// How far back the first sync reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncFrom {
    #[serde(rename = "now")]
    Now,
    #[serde(rename = "1_month")]
    OneMonth,
    #[serde(rename = "3_months")]
    ThreeMonths,
    #[serde(rename = "6_months")]
    SixMonths,
}

impl SyncFrom {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "now" => Some(Self::Now),
            "1_month" => Some(Self::OneMonth),
            "3_months" => Some(Self::ThreeMonths),
            "6_months" => Some(Self::SixMonths),
            _ => None,
        }
    }

    /// The absolute date: `now` minus whole calendar months, the day clamped to the
    /// target month's length (31 March minus one month is 28 or 29 February).
    pub fn date_from(self, now: time::OffsetDateTime) -> time::OffsetDateTime {
        let months = match self {
            Self::Now => 0,
            Self::OneMonth => 1,
            Self::ThreeMonths => 3,
            Self::SixMonths => 6,
        };
        let index = now.year() * 12 + (now.month() as i32 - 1) - months;
        let (year, month0) = (index.div_euclid(12), index.rem_euclid(12));
        let month = time::Month::try_from(month0 as u8 + 1).unwrap_or(time::Month::January);
        let day = now.day().min(time::util::days_in_month(month, year));
        time::Date::from_calendar_date(year, month, day)
            .map(|date| now.replace_date(date))
            .unwrap_or(now)
    }
}

/// Where an account stands, as docs/api.md defines the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    Connecting,
    Syncing,
    Active,
    AuthRequired,
    Error,
    Disabled,
}

/// A folder of an account, and whether the user chose to sync it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountFolder {
    pub id: FolderId,
    pub path: String,
    pub name: String,
    pub role: Option<FolderRole>,
    pub selectable: bool,
    pub active: bool,
}

impl AccountFolder {
    pub fn from_listing(folder: Folder, active: bool) -> Self {
        Self {
            id: folder.id,
            path: folder.path,
            name: folder.name,
            role: folder.role,
            selectable: folder.selectable,
            active,
        }
    }
}

/// A connected mailbox, as stored. Its password is stored apart, encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub kind: AccountKind,
    /// The user who connected it (for a shared account, the admin who did).
    pub owner_id: String,
    pub connector: String,
    pub email: String,
    pub display_name: Option<String>,
    pub username: Option<String>,
    pub sync_from: SyncFrom,
    pub sync_from_date: String,
    pub create_contact: bool,
    pub enabled: bool,
    pub state: AccountState,
    pub state_reason: Option<String>,
    pub state_since: String,
    pub last_sync_at: Option<String>,
    /// How long the job behind `last_sync_at` took, in milliseconds.
    #[serde(default)]
    pub last_sync_duration_ms: Option<u64>,
    pub servers: Vec<ServerSpec>,
    pub allow_insecure_certificate: bool,
    pub settings: Vec<(String, String)>,
    pub folders: Vec<AccountFolder>,
    pub created_at: String,
    /// Counts the stored versions, so that a write based on an older one is refused rather
    /// than silently undoing another request's change.
    #[serde(default)]
    pub revision: u64,
}

impl Account {
    /// What a job needs to reach the account's servers.
    pub fn connection(&self, password: Option<Secret>) -> ConnectionSpec {
        ConnectionSpec {
            connector: self.connector.clone(),
            email: self.email.clone(),
            username: self.username.clone(),
            password,
            servers: self.servers.clone(),
            allow_insecure_certificate: self.allow_insecure_certificate,
            settings: self.settings.clone(),
        }
    }

    pub fn set_state(&mut self, state: AccountState, reason: Option<String>) {
        if self.state != state || self.state_reason != reason {
            self.state = state;
            self.state_reason = reason;
            self.state_since = crate::clock::now_rfc3339();
        }
    }
}

/// A field of a request that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for Invalid {}

/// The fields of a connection body that are not server blocks.
const CONNECTION_FIELDS: &[&str] = &[
    "connector",
    "email",
    "password",
    "username",
    "allow_insecure_certificate",
    "settings",
];

/// Names a connector may not give a server block: they are fields of the connection,
/// create and re-connect bodies or of the account object, where server blocks also appear.
const RESERVED_ROLES: &[&str] = &[
    "id",
    "kind",
    "owner_id",
    "display_name",
    "sync_from",
    "sync_from_date",
    "create_contact",
    "active_folders",
    "primary",
    "enabled",
    "state",
    "state_reason",
    "state_since",
    "last_sync_at",
    "last_sync_duration_ms",
    "folders",
    "created_at",
    "revision",
];

/// Whether a connector may name a server block `name`.
pub fn is_reserved_role(name: &str) -> bool {
    CONNECTION_FIELDS.contains(&name) || RESERVED_ROLES.contains(&name)
}

/// Parses a connection body. `server_roles` are the server blocks the connector declares;
/// `other_fields` are keys that belong to the surrounding request (e.g. `active_folders` on
/// create) and are accepted here without being read.
pub fn parse_connection(
    body: &Value,
    server_roles: impl Fn(&str) -> Option<Vec<String>>,
    other_fields: &[&str],
) -> Result<ConnectionSpec, Invalid> {
    let object = body
        .as_object()
        .ok_or_else(|| Invalid::new("body", "expected a JSON object"))?;
    let connector = required_str(object, "connector")?;
    let roles = server_roles(connector)
        .ok_or_else(|| Invalid::new("connector", format!("unknown connector `{connector}`")))?;

    for key in object.keys() {
        let known = CONNECTION_FIELDS.contains(&key.as_str())
            || other_fields.contains(&key.as_str())
            || roles.iter().any(|r| r == key);
        if !known {
            return Err(Invalid::new(key.as_str(), "unknown field"));
        }
    }

    let email = required_str(object, "email")?;
    validate_email(email).map_err(|m| Invalid::new("email", m))?;
    let password = match object.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.is_empty() => {
            return Err(Invalid::new("password", "must not be empty"));
        }
        Some(Value::String(p)) => Some(Secret::new(p.as_str())),
        Some(_) => return Err(Invalid::new("password", "expected a string")),
    };
    let username = optional_str(object, "username")?
        .map(|u| {
            if u.is_empty() || u.len() > 320 || u.chars().any(char::is_control) {
                Err(Invalid::new(
                    "username",
                    "must be 1-320 characters without control characters",
                ))
            } else {
                Ok(u.to_owned())
            }
        })
        .transpose()?;
    let allow_insecure_certificate = match object.get("allow_insecure_certificate") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(Invalid::new(
                "allow_insecure_certificate",
                "expected true or false",
            ));
        }
    };
    let settings = parse_settings(object.get("settings"))?;
    let servers = roles
        .iter()
        .map(|role| parse_server(role, object.get(role.as_str())))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(ConnectionSpec {
        connector: connector.to_owned(),
        email: email.to_owned(),
        username,
        password,
        servers,
        allow_insecure_certificate,
        settings,
    })
}

fn required_str<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a str, Invalid> {
    optional_str(object, field)?.ok_or_else(|| Invalid::new(field, "is required"))
}

fn optional_str<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, Invalid> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Invalid::new(field, "expected a string")),
    }
}

/// A deliberately permissive address check: one `@`, a plausible local part and domain,
/// nothing a header could be smuggled through. Servers are the judges of the rest.
pub fn validate_email(email: &str) -> Result<(), &'static str> {
    if email.len() > 254 {
        return Err("is longer than 254 characters");
    }
    let (local, domain) = email
        .rsplit_once('@')
        .ok_or("is not an email address (no `@`)")?;
    if local.is_empty() || local.len() > 64 {
        return Err("has an empty or over-long local part");
    }
    if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') {
        return Err("has an invalid domain");
    }
    let bad = |c: char| c.is_whitespace() || c.is_control() || "<>,;\"\\".contains(c);
    if email.chars().any(bad) || domain.contains('@') {
        return Err("contains characters not allowed in an address");
    }
    Ok(())
}

fn parse_server(role: &str, value: Option<&Value>) -> Result<ServerSpec, Invalid> {
    let object = match value {
        Some(Value::Object(object)) => object,
        None | Some(Value::Null) => return Err(Invalid::new(role, "is required")),
        Some(_) => return Err(Invalid::new(role, "expected an object")),
    };
    let field = |name: &str| format!("{role}.{name}");
    for key in object.keys() {
        if !["host", "port", "encryption"].contains(&key.as_str()) {
            return Err(Invalid::new(field(key), "unknown field"));
        }
    }
    let host = match object.get("host") {
        Some(Value::String(h)) => h.trim(),
        None | Some(Value::Null) => return Err(Invalid::new(field("host"), "is required")),
        Some(_) => return Err(Invalid::new(field("host"), "expected a string")),
    };
    let host = normalize_host(host).map_err(|m| Invalid::new(field("host"), m))?;
    let port = match object.get("port") {
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| Invalid::new(field("port"), "must be a whole number from 1 to 65535"))?
            as u16,
        None | Some(Value::Null) => return Err(Invalid::new(field("port"), "is required")),
        Some(_) => {
            return Err(Invalid::new(
                field("port"),
                "must be a whole number from 1 to 65535",
            ));
        }
    };
    let encryption = match object.get("encryption") {
        Some(Value::String(e)) => Encryption::parse(e).ok_or_else(|| {
            Invalid::new(
                field("encryption"),
                "must be one of `ssl`, `starttls`, `none`",
            )
        })?,
        None | Some(Value::Null) => return Err(Invalid::new(field("encryption"), "is required")),
        Some(_) => {
            return Err(Invalid::new(
                field("encryption"),
                "must be one of `ssl`, `starttls`, `none`",
            ));
        }
    };
    Ok(ServerSpec {
        role: role.to_owned(),
        host,
        port,
        encryption,
    })
}

/// A host name (lower-cased) or an address literal (IPv6 without its brackets). Addresses a
/// connector may never reach (link-local, cloud metadata) are refused here already, so the
/// user hears of it before any test.
fn normalize_host(host: &str) -> Result<String, String> {
    let literal = match host.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .filter(|inner| inner.parse::<std::net::Ipv6Addr>().is_ok())
            .ok_or("is not a valid bracketed IPv6 address")?,
        None => host,
    };
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return match refused_address_reason(ip, true) {
            Some(reason) => Err(format!("{ip} is {reason}")),
            None => Ok(ip.to_string()),
        };
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if host.is_empty()
        || host.len() > 253
        || !host.trim_end_matches('.').split('.').all(valid_label)
    {
        return Err("is not a valid host name or address".into());
    }
    Ok(host.to_ascii_lowercase())
}

fn parse_settings(value: Option<&Value>) -> Result<Vec<(String, String)>, Invalid> {
    let object = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(Invalid::new("settings", "expected an object")),
    };
    if object.len() > 64 {
        return Err(Invalid::new("settings", "has more than 64 entries"));
    }
    object
        .iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Bool(_) | Value::Number(_) => value.to_string(),
                _ => {
                    return Err(Invalid::new(
                        format!("settings.{key}"),
                        "expected a string, number or boolean",
                    ));
                }
            };
            if key.len() > 64 || text.len() > 4096 {
                return Err(Invalid::new(format!("settings.{key}"), "is too long"));
            }
            Ok((key.clone(), text))
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

    fn error_field(body: Value) -> String {
        parse_connection(&body, roles, &[]).unwrap_err().field
    }

    #[test]
    fn a_complete_body_parses() {
        let spec = parse_connection(&body(), roles, &[]).unwrap();
        assert_eq!(spec.login(), "alice@example.com");
        assert_eq!(
            spec.server("smtp").unwrap().encryption,
            Encryption::Starttls
        );
        assert_eq!(spec.server("imap").unwrap().port, 993);
    }

    #[test]
    fn each_mistake_names_its_field() {
        let mut b = body();
        b["imap"]["port"] = json!(70000);
        assert_eq!(error_field(b), "imap.port");
        let mut b = body();
        b["smtp"]["encryption"] = json!("tls");
        assert_eq!(error_field(b), "smtp.encryption");
        let mut b = body();
        b["email"] = json!("not-an-address");
        assert_eq!(error_field(b), "email");
        let mut b = body();
        b["connector"] = json!("pop3");
        assert_eq!(error_field(b), "connector");
        let mut b = body();
        b["colour"] = json!("red");
        assert_eq!(error_field(b), "colour");
        let mut b = body();
        b.as_object_mut().unwrap().remove("smtp");
        assert_eq!(error_field(b), "smtp");
        let mut b = body();
        b["imap"]["host"] = json!("169.254.169.254");
        assert_eq!(error_field(b), "imap.host");
        let mut b = body();
        b["imap"]["host"] = json!("bad host name");
        assert_eq!(error_field(b), "imap.host");
        let mut b = body();
        b["imap"]["host"] = json!("[10.0.0.1");
        assert_eq!(error_field(b), "imap.host");
    }

    #[test]
    fn sync_from_counts_calendar_months_and_clamps_the_day() {
        use time::macros::datetime;
        let at = datetime!(2027-03-31 10:00 UTC);
        assert_eq!(SyncFrom::Now.date_from(at), at);
        assert_eq!(
            SyncFrom::OneMonth.date_from(at),
            datetime!(2027-02-28 10:00 UTC)
        );
        assert_eq!(
            SyncFrom::ThreeMonths.date_from(at),
            datetime!(2026-12-31 10:00 UTC)
        );
        assert_eq!(
            SyncFrom::SixMonths.date_from(datetime!(2028-08-31 00:00 UTC)),
            datetime!(2028-02-29 00:00 UTC)
        );
    }

    #[test]
    fn loopback_and_private_servers_are_accepted() {
        let mut b = body();
        b["imap"]["host"] = json!("127.0.0.1");
        b["smtp"]["host"] = json!("[::1]");
        let spec = parse_connection(&b, roles, &[]).unwrap();
        assert_eq!(spec.server("smtp").unwrap().host, "::1");
    }
}
