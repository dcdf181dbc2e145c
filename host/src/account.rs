//! Mail accounts: how one is reached ([`ConnectionSpec`]), who works it, which folders sync,
//! and the rules for the addresses and hosts a connection may name.

use crate::endpoint::ServerSpec;
use crate::endpoint::refused_address_reason;
use crate::folder::{Folder, FolderId, FolderRole};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
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
    /// An OAuth account's access tokens.
    pub bearer: Option<crate::auth::Bearer>,
    /// The provider's API base URL, for a connector whose provider is configured.
    pub api_url: Option<String>,
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
    /// How many messages the server holds in the folder's sync window, while that differs
    /// from what Mailroom holds after the folder was fetched again; none while they agree.
    #[serde(default)]
    pub server_total: Option<u64>,
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
            server_total: None,
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
    /// When the next job runs after the latest one failed; none while jobs succeed, and
    /// while the account waits for someone to act.
    #[serde(default)]
    pub next_retry_at: Option<String>,
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
    /// A newly connected account of `owner_id`, connecting, with no folders listed yet and
    /// no display name.
    pub fn new(
        id: String,
        kind: AccountKind,
        owner_id: &str,
        spec: &ConnectionSpec,
        sync_from: SyncFrom,
        create_contact: bool,
        now: time::OffsetDateTime,
    ) -> Self {
        let at = crate::clock::rfc3339(now);
        Self {
            id,
            kind,
            owner_id: owner_id.to_owned(),
            connector: spec.connector.clone(),
            email: spec.email.clone(),
            display_name: None,
            username: spec.username.clone(),
            sync_from,
            sync_from_date: crate::clock::rfc3339(sync_from.date_from(now)),
            create_contact,
            enabled: true,
            state: AccountState::Connecting,
            state_reason: None,
            state_since: at.clone(),
            next_retry_at: None,
            last_sync_at: None,
            last_sync_duration_ms: None,
            servers: spec.servers.clone(),
            allow_insecure_certificate: spec.allow_insecure_certificate,
            settings: spec.settings.clone(),
            folders: Vec::new(),
            created_at: at,
            revision: 0,
        }
    }

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
            bearer: None,
            api_url: None,
        }
    }

    /// The `account.state_changed` event for the account as it is now: its type and data.
    pub fn state_changed_event(&self) -> (&'static str, serde_json::Value) {
        let data = serde_json::json!({
            "account_id": self.id,
            "state": self.state,
            "reason": self.state_reason,
            "state_reason": self.state_reason,
            "next_retry_at": self.next_retry_at,
        });
        ("account.state_changed", data)
    }

    pub fn set_state(&mut self, state: AccountState, reason: Option<String>) {
        if self.state != state || self.state_reason != reason {
            self.state = state;
            self.state_reason = reason;
            self.state_since = crate::clock::now_rfc3339();
        }
    }
}

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
    "next_retry_at",
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

/// A host name (lower-cased) or an address literal (IPv6 without its brackets). Addresses a
/// connector may never reach (link-local, cloud metadata) are refused here already, so the
/// user hears of it before any test.
pub fn normalize_host(host: &str) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
