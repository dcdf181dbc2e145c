//! The sandbox holds against a connector that misbehaves on purpose: it reaches only its
//! account's servers, cannot have the host log in after writing a non-pre-auth command, never
//! sees the password, and is stopped when it spins, hoards memory or panics.

use mailroom_tests::mailroom::{Mailroom, hostile_connector};
use mailroom_tests::servers::MailServers;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A server with the hostile connector uploaded, as a third party's would be.
async fn hostile_mailroom() -> Mailroom {
    let mailroom = Mailroom::start(|config| {
        config.sandbox.cpu_ms = 500;
        config.sandbox.memory_mib = 32;
    })
    .await;
    let component = std::fs::read(hostile_connector()).expect("the test connector");
    let uploaded = mailroom.upload_connector(component, false).await;
    assert_eq!(
        uploaded.status,
        reqwest::StatusCode::CREATED,
        "{}",
        uploaded.body
    );
    mailroom
}

/// A test of the hostile connector's account on `servers`' IMAPS port, in `mode`.
async fn run(mailroom: &Mailroom, servers: &MailServers, mode: &str, extra: Value) -> Value {
    let user = servers.user("alice");
    let mut settings = json!({"mode": mode});
    if let (Some(settings), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        settings.extend(extra.clone());
    }
    let answer = mailroom
        .post(
            "/v1/accounts/test",
            json!({
                "connector": "hostile",
                "email": user.email,
                "password": user.password,
                "allow_insecure_certificate": true,
                "imap": {"host": "127.0.0.1", "port": servers.imaps_port(), "encryption": "ssl"},
                "settings": settings,
            }),
        )
        .await;
    assert_eq!(answer.body["ok"], false, "{}", answer.body);
    answer.body
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hostile_connector_is_listed_beside_the_built_in_one() {
    let mailroom = hostile_mailroom().await;
    let answer = mailroom.get("/v1/connectors").await;
    let ids: Vec<&str> = answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids, ["google", "hostile", "imap", "microsoft"]);
    let hostile = &answer.body["items"][1];
    assert_eq!(hostile["builtin"], false);
    assert_eq!(hostile["servers"], json!(["imap"]));
    // Built for the first world version, it still loads beside a connector of the newest.
    assert_eq!(hostile["wit_version"], "0.1.0");
    assert_eq!(answer.body["items"][2]["wit_version"], "0.8.0");
    assert!(
        hostile["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_that_is_not_the_accounts_is_refused() {
    let servers = MailServers::start();
    let mailroom = hostile_mailroom().await;
    // The SMTP server is real and listening, but it is not this account's.
    let target = format!("127.0.0.1:{}", servers.smtps_port());
    let answer = run(&mailroom, &servers, "other-host", json!({"target": target})).await;
    assert_eq!(answer["error"]["code"], "denied", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not one of this account's servers")),
        "{answer}"
    );
    let metadata = run(
        &mailroom,
        &servers,
        "other-host",
        json!({"target": "169.254.169.254:80"}),
    )
    .await;
    assert_eq!(metadata["error"]["code"], "denied", "{metadata}");
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_after_a_non_pre_auth_command_is_refused() {
    let servers = MailServers::start();
    let mailroom = hostile_mailroom().await;
    let answer = run(&mailroom, &servers, "data-before-auth", json!({})).await;
    assert_eq!(answer["error"]["code"], "denied", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`APPEND`")),
        "{answer}"
    );
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_in_another_protocol_than_the_servers_is_refused() {
    let servers = MailServers::start();
    let mailroom = hostile_mailroom().await;
    let answer = run(&mailroom, &servers, "wrong-protocol", json!({})).await;
    assert_eq!(answer["error"]["code"], "denied", "{answer}");
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_never_reaches_the_connector() {
    let servers = MailServers::start();
    let mailroom = hostile_mailroom().await;
    let answer = run(&mailroom, &servers, "spy", json!({})).await;
    // The spy logged in through the host and hands back every byte it read.
    let seen = answer["error"]["message"].as_str().expect("a message");
    assert!(seen.starts_with("saw: "), "{answer}");
    assert!(
        seen.contains("a2 OK"),
        "the spy read the session after login: {seen}"
    );
    let password = servers.user("alice").password;
    assert!(!seen.contains(&password), "{seen}");
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spinning_connector_is_stopped_by_its_cpu_budget() {
    let servers = MailServers::start();
    let mailroom = hostile_mailroom().await;
    let started = Instant::now();
    let answer = run(&mailroom, &servers, "spin", json!({})).await;
    assert_eq!(answer["error"]["code"], "connector", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("CPU budget")),
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_hoarding_memory_is_stopped_at_its_cap() {
    let servers = MailServers::start();
    let mailroom = hostile_mailroom().await;
    let answer = run(&mailroom, &servers, "allocate", json!({})).await;
    assert_eq!(answer["error"]["code"], "connector", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("32 MiB")),
        "{answer}"
    );
    // The server is unharmed and serves the next request.
    assert_eq!(mailroom.get("/healthz").await.body["status"], "ok");
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_connector_fails_only_its_own_job() {
    let servers = MailServers::start();
    let mailroom = hostile_mailroom().await;
    let answer = run(&mailroom, &servers, "panic", json!({})).await;
    assert_eq!(answer["error"]["code"], "connector", "{answer}");
    let user = servers.user("bob");
    let healthy = mailroom
        .post(
            "/v1/accounts/test",
            json!({
                "connector": "imap", "email": user.email, "password": user.password,
                "allow_insecure_certificate": true,
                "imap": {"host": "127.0.0.1", "port": servers.imaps_port(), "encryption": "ssl"},
                "smtp": {"host": "127.0.0.1", "port": servers.smtps_port(), "encryption": "ssl"},
            }),
        )
        .await;
    assert_eq!(healthy.body["ok"], true, "{}", healthy.body);
    mailroom.stop().await;
}
