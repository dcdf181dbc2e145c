//! `POST /v1/accounts/test` against a real Dovecot and SMTP server, and against servers that
//! misbehave: each failure has its own code and names the failing server.

use mailroom_tests::fakes;
use mailroom_tests::mailroom::Mailroom;
use mailroom_tests::servers::MailServers;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A connection body for `local`'s account, IMAP and SMTP each with its encryption mode.
fn body(servers: &MailServers, local: &str, imap: &str, smtp: &str) -> Value {
    let user = servers.user(local);
    let imap_port = match imap {
        "ssl" => servers.imaps_port(),
        _ => servers.imap_port(),
    };
    let smtp_port = match smtp {
        "ssl" => servers.smtps_port(),
        "starttls" => servers.smtp_starttls_port(),
        _ => servers.smtp_plain_port(),
    };
    json!({
        "connector": "imap",
        "email": user.email,
        "password": user.password,
        "imap": {"host": "localhost", "port": imap_port, "encryption": imap},
        "smtp": {"host": "localhost", "port": smtp_port, "encryption": smtp},
    })
}

/// A Mailroom that trusts the test servers' self-signed certificate through `--ca-file`.
async fn trusting(servers: &MailServers) -> Mailroom {
    let ca = servers.cert_path().to_owned();
    Mailroom::start(|config| config.ca_file = Some(ca)).await
}

fn folder<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["folders"]
        .as_array()
        .and_then(|folders| folders.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("no folder {name} in {answer}"))
}

fn assert_failure(answer: &Value, stage: &str, code: &str) {
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["stage"], stage, "{answer}");
    assert_eq!(answer["error"]["code"], code, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_encryption_mode_connects_and_lists_folders_with_roles() {
    let servers = MailServers::start();
    let mailroom = trusting(&servers).await;
    for (imap, smtp) in [("ssl", "ssl"), ("starttls", "starttls"), ("none", "none")] {
        let answer = mailroom
            .post("/v1/accounts/test", body(&servers, "alice", imap, smtp))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body["ok"], true, "{imap}/{smtp}: {}", answer.body);
        for (name, role, active) in [
            ("INBOX", "inbox", true),
            ("Sent", "sent", true),
            ("Drafts", "drafts", true),
            ("Trash", "trash", false),
            ("Junk", "spam", false),
            ("Archive", "archive", true),
        ] {
            let f = folder(&answer.body, name);
            assert_eq!(f["role"], role, "{f}");
            assert_eq!(f["selectable"], true, "{f}");
            assert_eq!(f["default_active"], active, "{f}");
        }
    }
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn folder_ids_are_the_same_in_two_tests_of_one_mailbox() {
    let servers = MailServers::start();
    let mailroom = trusting(&servers).await;
    let ids = |answer: &Value| -> Vec<(String, String)> {
        let mut ids: Vec<_> = answer["folders"]
            .as_array()
            .expect("folders")
            .iter()
            .map(|f| (f["name"].to_string(), f["id"].to_string()))
            .collect();
        ids.sort();
        ids
    };
    let first = mailroom
        .post("/v1/accounts/test", body(&servers, "bob", "ssl", "ssl"))
        .await;
    let second = mailroom
        .post(
            "/v1/accounts/test",
            body(&servers, "bob", "starttls", "starttls"),
        )
        .await;
    assert_eq!(first.body["ok"], true, "{}", first.body);
    assert_eq!(ids(&first.body), ids(&second.body));
    let inbox = folder(&first.body, "INBOX")["id"].as_str().expect("an id");
    let sent = folder(&first.body, "Sent")["id"].as_str().expect("an id");
    assert_ne!(inbox, sent);
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_auth_failed_at_the_imap_stage() {
    let servers = MailServers::start();
    let mailroom = trusting(&servers).await;
    let mut wrong = body(&servers, "alice", "ssl", "ssl");
    wrong["password"] = json!("not-the-password");
    let answer = mailroom.post("/v1/accounts/test", wrong).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_failure(&answer.body, "imap", "auth_failed");
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_signed_certificate_needs_trust_or_the_accounts_consent() {
    let servers = MailServers::start();
    let untrusting = Mailroom::start(|_| {}).await;
    let refused = untrusting
        .post("/v1/accounts/test", body(&servers, "carol", "ssl", "ssl"))
        .await;
    assert_failure(&refused.body, "imap", "tls");

    let mut consenting = body(&servers, "carol", "starttls", "ssl");
    consenting["allow_insecure_certificate"] = json!(true);
    let accepted = untrusting.post("/v1/accounts/test", consenting).await;
    assert_eq!(accepted.body["ok"], true, "{}", accepted.body);
    untrusting.stop().await;

    // Listed in --ca-file, the same certificate is trusted as the server's own.
    let trusting = trusting(&servers).await;
    let trusted = trusting
        .post("/v1/accounts/test", body(&servers, "carol", "ssl", "ssl"))
        .await;
    assert_eq!(trusted.body["ok"], true, "{}", trusted.body);
    trusting.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_smtp_stage_is_named_when_only_smtp_fails() {
    let servers = MailServers::start();
    let mailroom = trusting(&servers).await;
    let mut closed_port = body(&servers, "alice", "ssl", "ssl");
    closed_port["smtp"]["port"] = json!(free_port());
    let answer = mailroom.post("/v1/accounts/test", closed_port).await;
    assert_failure(&answer.body, "smtp", "connect");
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_port_is_connect_and_an_unknown_host_is_dns() {
    let mailroom = Mailroom::start(|_| {}).await;
    let port = free_port();
    let answer = mailroom
        .post(
            "/v1/accounts/test",
            json!({
                "connector": "imap", "email": "a@example.test", "password": "pw",
                "imap": {"host": "127.0.0.1", "port": port, "encryption": "ssl"},
                "smtp": {"host": "127.0.0.1", "port": port, "encryption": "ssl"},
            }),
        )
        .await;
    assert_failure(&answer.body, "imap", "connect");

    let answer = mailroom
        .post(
            "/v1/accounts/test",
            json!({
                "connector": "imap", "email": "a@example.test", "password": "pw",
                "imap": {"host": "no-such-host.invalid", "port": 993, "encryption": "ssl"},
                "smtp": {"host": "no-such-host.invalid", "port": 465, "encryption": "ssl"},
            }),
        )
        .await;
    assert_failure(&answer.body, "imap", "dns");
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_server_is_a_timeout_within_the_configured_bound() {
    let port = fakes::silent_server().await;
    let mailroom = Mailroom::start(|config| config.net.io_timeout_ms = 1_500).await;
    let started = Instant::now();
    let answer = mailroom
        .post(
            "/v1/accounts/test",
            json!({
                "connector": "imap", "email": "a@example.test", "password": "pw",
                "imap": {"host": "127.0.0.1", "port": port, "encryption": "none"},
                "smtp": {"host": "127.0.0.1", "port": port, "encryption": "none"},
            }),
        )
        .await;
    assert_failure(&answer.body, "imap", "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    mailroom.stop().await;
}

/// Tests a connection to the fake plaintext IMAP server with `encryption` on both servers.
async fn test_fake_server(encryption: &str) -> Value {
    let port = fakes::plaintext_imap_server().await;
    let mailroom = Mailroom::start(|_| {}).await;
    let answer = mailroom
        .post(
            "/v1/accounts/test",
            json!({
                "connector": "imap", "email": "a@example.test", "password": "canary-pw",
                "imap": {"host": "127.0.0.1", "port": port, "encryption": encryption},
                "smtp": {"host": "127.0.0.1", "port": port, "encryption": encryption},
            }),
        )
        .await;
    mailroom.stop().await;
    answer.body
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_asked_but_not_offered_is_tls_and_nothing_is_sent_in_clear() {
    let answer = test_fake_server("starttls").await;
    assert_failure(&answer, "imap", "tls");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_echoing_the_login_does_not_leak_the_password() {
    let answer = test_fake_server("none").await;
    assert_failure(&answer, "imap", "protocol");
    let text = answer.to_string();
    // The server echoed `\0a@example.test\0canary-pw` in base64.
    assert!(!text.contains("canary-pw"), "{text}");
    assert!(
        !text.contains("AGFAZXhhbXBsZS50ZXN0AGNhbmFyeS1wdw"),
        "{text}"
    );
    // A failed login names the server's status, never its text.
    assert_eq!(
        answer["error"]["message"],
        "the server rejected the login command (BAD)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
