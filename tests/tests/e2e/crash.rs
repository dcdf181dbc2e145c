//! A Mailroom killed with SIGKILL in the middle of a first sync, while new mail keeps
//! arriving, loses nothing and duplicates nothing once it is started again.
//!
//! The server runs in a child process: this test binary itself, started again to run only
//! `server_process`, which serves until it is killed. The same holds for a Mailroom killed
//! while the SMTP server is taking a message: it is never handed over twice; and for one
//! killed while delivering a backlog of webhook events: each arrives, once, in order.

use crate::webhooks::{all_events, assert_carries};
use mailroom_tests::imap::{ImapClient, message};
use mailroom_tests::mailbox::{create_account, days_ago, rfc2822_days_ago};
use mailroom_tests::mailroom::{Api, launch, test_config};
use mailroom_tests::process::ChildServer;
use mailroom_tests::servers::MailServers;
use mailroom_tests::webhooks::{Receiver, deliveries};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DATA_ENV: &str = "MAILROOM_CRASH_TEST_DATA";
const CA_ENV: &str = "MAILROOM_CRASH_TEST_CA";

/// The server of the test below, in its own process. Does nothing when run on its own.
#[tokio::test]
#[ignore = "started by killed_mid_first_sync_it_resumes_without_loss_or_duplicates"]
async fn server_process() {
    let (Ok(data), Ok(ca)) = (std::env::var(DATA_ENV), std::env::var(CA_ENV)) else {
        return;
    };
    let mut config = test_config(Path::new(&data));
    config.ca_file = Some(ca.into());
    config.sync.interval_secs = 1;
    // Small pages: many commits, so the kill lands between two of them.
    config.sync.page_messages = 10;
    // A failed delivery waits for the operator's retry, which the test asks for: nothing
    // else can send the head of the backlog a second time.
    config.webhooks.first_retry_secs = 600.0;
    let server = launch(&config).await;
    println!("listening on {}", server.addr());
    std::future::pending::<()>().await;
}

/// Starts the server process; returns it and its API.
fn start_server(data: &Path, ca: &Path) -> (ChildServer, Api) {
    ChildServer::start(
        "crash::server_process",
        [(DATA_ENV, data.as_os_str()), (CA_ENV, ca.as_os_str())],
    )
}

/// Connects alice's mailbox; returns the account id.
async fn connect_alice(api: &Api, servers: &MailServers, sync_from: &str) -> String {
    let alice = servers.user("alice");
    create_account(api, servers, &alice, json!({"sync_from": sync_from})).await
}

async fn message_ids(api: &Api, account: &str) -> Vec<String> {
    api.messages(account, "")
        .await
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn killed_mid_first_sync_it_resumes_without_loss_or_duplicates() {
    let servers = MailServers::start();
    let alice = servers.user("alice");
    let mut imap = ImapClient::login(servers.imap_port(), &alice.email, &alice.password).await;
    for i in 0..1500 {
        let raw = message(
            &format!("old-{i}@c"),
            &format!("old {i}"),
            &rfc2822_days_ago(1),
            "x",
        );
        imap.append("INBOX", "", &days_ago(1), &raw).await;
    }
    let data = tempfile::tempdir().expect("a data directory");
    let (server, api) = start_server(data.path(), servers.cert_path());
    let account = connect_alice(&api, &servers, "1_month").await;

    // New mail keeps arriving from now until the end of the test.
    let arriving = Arc::new(AtomicBool::new(true));
    let appender = {
        let arriving = arriving.clone();
        let port = servers.imap_port();
        let (email, password) = (alice.email.clone(), alice.password.clone());
        tokio::spawn(async move {
            let mut imap = ImapClient::login(port, &email, &password).await;
            let mut n = 0;
            while arriving.load(Ordering::Relaxed) {
                let raw = message(
                    &format!("new-{n}@c"),
                    &format!("new {n}"),
                    &rfc2822_days_ago(0),
                    "y",
                );
                imap.append("INBOX", "", &days_ago(0), &raw).await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };

    // Kill it once part of the first sync is in.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held = api.messages(&account, "").await.len();
        if held >= 100 {
            let state = api.get(&format!("/v1/accounts/{account}")).await.body["state"].clone();
            assert_eq!(state, "syncing", "the first sync finished before the kill");
            break;
        }
        assert!(Instant::now() < deadline, "the first sync did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();

    let (server, api) = start_server(data.path(), servers.cert_path());
    tokio::time::sleep(Duration::from_millis(500)).await;
    arriving.store(false, Ordering::Relaxed);
    let new = appender.await.expect("the appender");
    assert!(new > 0);
    // Everything the server holds now, once a sync that started afterwards caught up.
    let synced = api.sync(&account).await;
    assert_eq!(synced["state"], "active", "{synced}");

    let mut server_ids = imap.message_ids("INBOX").await;
    server_ids.sort();
    let mut ids = message_ids(&api, &account).await;
    ids.sort();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no message is held twice");
    assert_eq!(ids.len(), 1500 + new);
    assert_eq!(ids, server_ids);
    server.kill();
}

#[tokio::test]
async fn killed_during_delivery_it_never_sends_twice() {
    let servers = MailServers::start();
    let bob = servers.user("bob");
    let data = tempfile::tempdir().expect("a data directory");
    let (server, api) = start_server(data.path(), servers.cert_path());
    let account = connect_alice(&api, &servers, "now").await;
    api.sync(&account).await;

    // The test SMTP server delivers this one at once and says so 20 s later.
    let queued = api
        .post(
            &format!("/v1/accounts/{account}/send"),
            json!({"to": [{"email": bob.email}], "subject": "[slow reply] once", "text": "Once."}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    let outbox = queued.body["outbox_id"].as_str().unwrap().to_owned();
    let message_id = queued.body["message_id"].as_str().unwrap().to_owned();
    let mut bob_imap = ImapClient::login(servers.imap_port(), &bob.email, &bob.password).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !bob_imap.message_ids("INBOX").await.contains(&message_id) {
        assert!(Instant::now() < deadline, "the message was not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let entry = api.get(&format!("/v1/outbox/{outbox}")).await;
    assert_eq!(entry.body["state"], "sending", "{}", entry.body);
    server.kill();

    // After the restart the send is not handed over again.
    let (server, api) = start_server(data.path(), servers.cert_path());
    api.sync(&account).await;
    api.sync(&account).await;
    let entry = api.get(&format!("/v1/outbox/{outbox}")).await;
    assert_eq!(entry.body["state"], "failed", "{}", entry.body);
    assert!(
        entry.body["error"]
            .as_str()
            .unwrap()
            .contains("not sent again"),
        "{}",
        entry.body
    );
    let copies = bob_imap.message_ids("INBOX").await;
    assert_eq!(copies.iter().filter(|id| **id == message_id).count(), 1);
    server.kill();
}

#[tokio::test]
async fn killed_amid_a_backlog_of_webhook_deliveries_every_event_arrives_once_in_order() {
    let servers = MailServers::start();
    let alice = servers.user("alice");
    let mut imap = ImapClient::login(servers.imap_port(), &alice.email, &alice.password).await;
    for i in 0..1000 {
        let raw = message(
            &format!("hook-{i}@c"),
            &format!("hook {i}"),
            &rfc2822_days_ago(1),
            "x",
        );
        imap.append("INBOX", "", &days_ago(1), &raw).await;
    }
    let receiver = Receiver::start(503).await;
    let data = tempfile::tempdir().expect("a data directory");
    let (server, api) = start_server(data.path(), servers.cert_path());
    let registered = api
        .post(
            "/v1/webhooks",
            json!({"url": receiver.url(), "events": ["*"]}),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let webhook = registered.body["id"].as_str().unwrap().to_owned();
    let secret = registered.body["secret"].as_str().unwrap().to_owned();

    // The whole mailbox syncs while the receiver is down: a backlog of every event.
    let account = connect_alice(&api, &servers, "1_month").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while api.messages(&account, "").await.len() < 1000 {
        assert!(Instant::now() < deadline, "the first sync did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = all_events(&api).await;
    assert!(events.len() >= 1000, "{} events", events.len());
    assert!(receiver.accepted().is_empty());

    // The receiver is back; the operator retries the delivery at the head of the queue
    // rather than wait out its backoff; the server is killed once part of the backlog is in.
    receiver.answer_with(200);
    let tried: Vec<_> = deliveries(&api, &webhook)
        .await
        .into_iter()
        .filter(|d| d["attempts"].as_u64() > Some(0))
        .collect();
    assert_eq!(tried.len(), 1, "one delivery at a time: {tried:?}");
    let head = &tried[0];
    let retried = api
        .post(
            &format!(
                "/v1/webhooks/{webhook}/deliveries/{}/retry",
                head["id"].as_str().unwrap()
            ),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.body);
    receiver
        .wait_for("part of the backlog", Duration::from_secs(60), |a| {
            a.len() >= 200
        })
        .await;
    server.kill();
    let before_restart = receiver.accepted().len();
    assert!(
        before_restart < events.len(),
        "the backlog was delivered before the kill"
    );

    let (server, _api) = start_server(data.path(), servers.cert_path());
    let accepted = receiver
        .wait_for("the whole backlog", Duration::from_secs(120), |a| {
            a.len() >= events.len()
        })
        .await;
    assert_carries(&accepted[..events.len()], &events, &secret);
    // Only the attempt under way at the kill may have reached the receiver twice. Events
    // written after the restart may still be arriving: they are counted by their ids.
    let mut posts = std::collections::BTreeMap::<String, usize>::new();
    for post in receiver.received().iter().filter(|r| r.answered == 200) {
        *posts.entry(post.id()).or_default() += 1;
    }
    let repeated: Vec<_> = posts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.len() <= 1 && repeated.iter().all(|(_, n)| **n == 2),
        "events accepted more than once: {repeated:?}"
    );
    server.kill();
}
