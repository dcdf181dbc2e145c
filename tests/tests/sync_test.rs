//! Synchronisation against a real Dovecot: what arrives on the first sync, and how changes
//! made by another IMAP client show up in Mailroom after the next one.

use mailroom_tests::imap::{ImapClient, message};
use mailroom_tests::mailroom::Mailroom;
use mailroom_tests::servers::{MailServers, Options};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;

struct Setup {
    servers: MailServers,
    mailroom: Mailroom,
}

impl Setup {
    async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    async fn start_with(options: Options) -> Self {
        let servers = MailServers::start_with(options);
        let ca = servers.cert_path().to_owned();
        let mailroom = Mailroom::start(|config| {
            config.ca_file = Some(ca);
            // Jobs run when the tests ask, not on a timer.
            config.sync.interval_secs = 3600;
            config.sync.page_messages = 7;
        })
        .await;
        Self { servers, mailroom }
    }

    async fn imap(&self, local: &str) -> ImapClient {
        let user = self.servers.user(local);
        ImapClient::login(self.servers.imap_port(), &user.email, &user.password).await
    }

    /// Connects `local`'s mailbox and waits for its first sync.
    async fn connect(&self, local: &str, sync_from: &str, extra: Value) -> String {
        let user = self.servers.user(local);
        let mut body = json!({
            "connector": "imap",
            "email": user.email,
            "password": user.password,
            "imap": {"host": "localhost", "port": self.servers.imaps_port(), "encryption": "ssl"},
            "smtp": {"host": "localhost", "port": self.servers.smtps_port(), "encryption": "ssl"},
            "kind": "personal",
            "sync_from": sync_from,
        });
        for (key, value) in extra.as_object().into_iter().flatten() {
            body[key] = value.clone();
        }
        let created = self.mailroom.post("/v1/accounts", body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.body["id"].as_str().expect("an id").to_owned();
        self.mailroom.sync(&id).await;
        id
    }

    async fn subjects(&self, account: &str, filter: &str) -> BTreeSet<String> {
        self.mailroom
            .messages(account, filter)
            .await
            .iter()
            .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn folder_id(&self, account: &str, name: &str) -> String {
        let folders = self
            .mailroom
            .get(&format!("/v1/accounts/{account}/folders"))
            .await;
        folders.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no folder {name}: {}", folders.body))["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    }
}

/// An IMAP date-time `days` ago.
fn days_ago(days: i64) -> String {
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

fn rfc2822_days_ago(days: i64) -> String {
    let at = time::OffsetDateTime::now_utc() - time::Duration::days(days);
    at.format(&time::format_description::well_known::Rfc2822)
        .expect("a date")
}

/// Seeds alice's INBOX with one message per age (in days); subjects are `age N`.
async fn seed_ages(setup: &Setup, ages: &[i64]) {
    let mut imap = setup.imap("alice").await;
    for age in ages {
        let raw = message(
            &format!("age-{age}@client.test"),
            &format!("age {age}"),
            &rfc2822_days_ago(*age),
            &format!("Sent {age} days ago."),
        );
        imap.append("INBOX", "", &days_ago(*age), &raw).await;
    }
    imap.logout().await;
}

fn subjects_of(ages: &[i64]) -> BTreeSet<String> {
    ages.iter().map(|a| format!("age {a}")).collect()
}

#[tokio::test]
async fn first_sync_takes_exactly_the_chosen_window() {
    let setup = Setup::start().await;
    let ages = [0, 2, 20, 27, 40, 75, 120, 170, 200, 300];
    seed_ages(&setup, &ages).await;

    let one = setup.connect("alice", "1_month", json!({})).await;
    assert_eq!(setup.subjects(&one, "").await, subjects_of(&[0, 2, 20, 27]));
    let three = setup.connect("alice", "3_months", json!({})).await;
    assert_eq!(setup.subjects(&three, "").await, subjects_of(&[0, 2, 20, 27, 40, 75]));
    let six = setup.connect("alice", "6_months", json!({})).await;
    assert_eq!(
        setup.subjects(&six, "").await,
        subjects_of(&[0, 2, 20, 27, 40, 75, 120, 170])
    );
    let now = setup.connect("alice", "now", json!({})).await;
    assert!(setup.subjects(&now, "").await.is_empty());

    // Newest first, by arrival; every account ends up `active`.
    let listed = setup.mailroom.messages(&six, "").await;
    let order: Vec<&str> = listed.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(order[..3], ["age 0", "age 2", "age 20"]);
    for account in [&one, &three, &six, &now] {
        let body = setup.mailroom.get(&format!("/v1/accounts/{account}")).await.body;
        assert_eq!(body["state"], "active", "{body}");
    }

    // Mail arriving later reaches every account, `now` included.
    seed_ages(&setup, &[400]).await;
    for account in [&one, &now] {
        setup.mailroom.sync(account).await;
        assert!(setup.subjects(account, "").await.contains("age 400"));
    }
}
