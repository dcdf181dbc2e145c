//! Account health: a server that stops answering is tried again after waits that double,
//! the account shows `error` after three failures in a row with a reason a person can act
//! on and the time of the next try, and it comes back to `active` by itself once the
//! server does; each change is an `account.state_changed` event carrying the reason.

use crate::webhooks::all_events;
use mailroom_tests::mailbox::Setup;
use mailroom_tests::servers::Options;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// A server on a port that takes connections and closes them at once, noting when each
/// arrived.
async fn dead_server(port: u16) -> (Arc<Mutex<Vec<Instant>>>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the stopped server's port is free");
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let noted = arrivals.clone();
    let task = tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            noted.lock().unwrap().push(Instant::now());
            drop(connection);
        }
    });
    (arrivals, task)
}

/// The starts of the jobs among `arrivals`: connections closer than a few hundred
/// milliseconds to the one before belong to the same job.
fn job_starts(arrivals: &[Instant]) -> Vec<Instant> {
    let mut starts: Vec<Instant> = Vec::new();
    for at in arrivals {
        if starts
            .last()
            .is_none_or(|last| at.duration_since(*last) > Duration::from_millis(400))
        {
            starts.push(*at);
        }
    }
    starts
}

fn state_changes(events: &[Value], account: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["type"] == "account.state_changed" && e["data"]["account_id"] == account)
        .map(|e| e["data"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_stops_answering_is_retried_with_growing_waits_then_error_then_active_again()
{
    let setup = Setup::start_configured(Options::default(), |config| {
        config.sync.first_retry_secs = 1;
        config.sync.error_after_failures = 3;
    })
    .await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let Setup {
        mut servers,
        mailroom,
    } = setup;
    let active = mailroom.get(&format!("/v1/accounts/{account}")).await.body;
    assert_eq!(active["state"], "active", "{active}");
    assert_eq!(active["next_retry_at"], Value::Null);

    servers.stop_dovecot();
    let (arrivals, dead) = dead_server(servers.imaps_port()).await;
    // One job is asked for; every later one is the scheduler's retry.
    let failed = mailroom
        .sync_until_state(&account, "error", Duration::from_secs(30))
        .await;
    let reason = failed["state_reason"].as_str().unwrap();
    assert!(
        reason.contains("after 3 attempts in a row; next try at"),
        "{reason}"
    );
    assert!(
        reason.starts_with("The ") && reason.contains("the imap server localhost"),
        "a sentence naming the server: {reason}"
    );
    assert!(failed["next_retry_at"].is_string(), "{failed}");

    // The waits between the jobs double: about 1 s, then about 2 s (each ±20%, plus the
    // job's own time on a busy machine).
    let starts = job_starts(&arrivals.lock().unwrap());
    assert!(
        starts.len() >= 3,
        "{} jobs reached the server",
        starts.len()
    );
    let gaps: Vec<f64> = starts
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect();
    assert!((0.75..2.5).contains(&gaps[0]), "{gaps:?}");
    assert!((1.55..4.0).contains(&gaps[1]), "{gaps:?}");
    assert!(gaps[1] > gaps[0], "the waits grow: {gaps:?}");

    let events = all_events(&mailroom).await;
    let changes = state_changes(&events, &account);
    let error = changes.last().unwrap();
    assert_eq!(error["state"], "error", "{changes:?}");
    assert_eq!(error["reason"], failed["state_reason"]);
    assert_eq!(error["next_retry_at"], failed["next_retry_at"]);

    // The server is back: the account recovers by itself at its next try.
    dead.abort();
    let _ = dead.await;
    servers.start_dovecot_again();
    let back = mailroom
        .wait_for_state(&account, "active", Duration::from_secs(60))
        .await;
    assert_eq!(back["state_reason"], Value::Null, "{back}");
    assert_eq!(back["next_retry_at"], Value::Null, "{back}");
    let changes = state_changes(&all_events(&mailroom).await, &account);
    let last = changes.last().unwrap();
    assert_eq!(
        (&last["state"], &last["reason"]),
        (&json!("active"), &Value::Null)
    );
    mailroom.stop().await;
}
