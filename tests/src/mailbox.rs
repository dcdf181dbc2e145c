//! A test mailbox: the test mail servers and a Mailroom with accounts on them, and the
//! dates tests seed mail with.

use crate::imap::ImapClient;
use crate::mailroom::{Api, Mailroom};
use crate::servers::{MailServers, Options, User};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;

pub struct Setup {
    pub servers: MailServers,
    pub mailroom: Mailroom,
}

impl Setup {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        Self::start_configured(options, |_| {}).await
    }

    /// Starts with `options` and the test configuration, then `configure` changes it.
    pub async fn start_configured(
        options: Options,
        configure: impl FnOnce(&mut mailroom::Config),
    ) -> Self {
        let servers = MailServers::start_with(options);
        let ca = servers.cert_path().to_owned();
        let mailroom = Mailroom::start(|config| {
            config.ca_file = Some(ca);
            // Jobs run when the tests ask, not on a timer.
            config.sync.interval_secs = 3600;
            config.sync.page_messages = 7;
            configure(config);
        })
        .await;
        Self { servers, mailroom }
    }

    pub async fn imap(&self, local: &str) -> ImapClient {
        let user = self.servers.user(local);
        ImapClient::login(self.servers.imap_port(), &user.email, &user.password).await
    }

    /// Connects `local`'s mailbox and waits for its first sync.
    pub async fn connect(&self, local: &str, sync_from: &str, extra: Value) -> String {
        let mut fields = json!({"sync_from": sync_from});
        for (key, value) in extra.as_object().into_iter().flatten() {
            fields[key] = value.clone();
        }
        let user = self.servers.user(local);
        let id = create_account(&self.mailroom, &self.servers, &user, fields).await;
        self.mailroom.sync(&id).await;
        id
    }

    pub async fn subjects(&self, account: &str, filter: &str) -> BTreeSet<String> {
        self.mailroom
            .messages(account, filter)
            .await
            .iter()
            .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub async fn folder_id(&self, account: &str, name: &str) -> String {
        self.mailroom.folder_id(account, name).await
    }
}

/// Creates the account of `user`'s mailbox on `servers` (IMAP and SMTP over TLS, a
/// personal account synced from a month ago, unless `fields` say otherwise), without waiting
/// for a sync; returns its id.
pub async fn create_account(
    api: &Api,
    servers: &MailServers,
    user: &User,
    fields: Value,
) -> String {
    let mut body = json!({
        "connector": "imap",
        "email": user.email,
        "password": user.password,
        "imap": {"host": "localhost", "port": servers.imaps_port(), "encryption": "ssl"},
        "smtp": {"host": "localhost", "port": servers.smtps_port(), "encryption": "ssl"},
        "kind": "personal",
        "sync_from": "1_month",
    });
    for (key, value) in fields.as_object().into_iter().flatten() {
        body[key] = value.clone();
    }
    let created = api.post("/v1/accounts", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["id"].as_str().expect("an id").to_owned()
}

/// An IMAP date-time `days` ago.
pub fn days_ago(days: i64) -> String {
    let at = time::OffsetDateTime::now_utc() - time::Duration::days(days);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02}-{}-{} {:02}:{:02}:{:02} +0000",
        at.day(),
        months[at.month() as usize - 1],
        at.year(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

pub fn rfc2822_days_ago(days: i64) -> String {
    let at = time::OffsetDateTime::now_utc() - time::Duration::days(days);
    at.format(&time::format_description::well_known::Rfc2822)
        .expect("a date")
}

/// A short message from `from` to `to`, dated `days_ago`.
pub fn mail(message_id: &str, subject: &str, from: &str, to: &str, days_ago: i64) -> Vec<u8> {
    let date = rfc2822_days_ago(days_ago);
    format!(
        "Message-ID: <{message_id}>\r\nDate: {date}\r\nFrom: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello about {subject}.\r\n"
    )
    .into_bytes()
}

/// Milliseconds since the epoch, `days` ago.
pub fn ms_days_ago(days: i64) -> i64 {
    (time::OffsetDateTime::now_utc() - time::Duration::days(days)).unix_timestamp() * 1000
}
