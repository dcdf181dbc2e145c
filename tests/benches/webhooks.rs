//! Webhook deliveries to a local receiver: how many a second one endpoint takes once a
//! backlog has built up (deliveries go one at a time per endpoint, each attempt recorded
//! before the next), and how long a message delivered to Dovecot takes to reach the
//! receiver as `message.created` when accounts sync every second.
//!
//! `cargo bench -p mailroom-tests --bench webhooks` (or `scripts/bench.sh`) appends one JSON
//! line per metric to `bench/results/webhooks.jsonl`.

use mailroom_tests::bench::{self, round};
use mailroom_tests::load::percentile;
use mailroom_tests::mailbox::{Setup, days_ago, mail};
use mailroom_tests::servers::Options;
use mailroom_tests::webhooks::{Receiver, deliveries};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const BACKLOG: usize = 2_000;
const ARRIVALS: usize = 30;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let setup = Setup::start_configured(Options::default(), |config| {
        config.sync.interval_secs = 1;
        config.sync.page_messages = 500;
    })
    .await;
    let api = &setup.mailroom;
    let receiver = Receiver::start(503).await;
    let webhook = receiver.subscribe(api, &["message.created"]).await;

    // A backlog: the mailbox syncs while the receiver is down.
    let mut imap = setup.imap("alice").await;
    for i in 0..BACKLOG {
        let raw = bench::message(i, "alice@example.test");
        imap.append("INBOX", "", &days_ago(1), &raw).await;
    }
    imap.logout().await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    while api.messages(&account, "").await.len() < BACKLOG {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The receiver is back; the delivery it refused goes again at once.
    receiver.answer_with(200);
    let head = deliveries(api, &webhook)
        .await
        .into_iter()
        .find(|d| d["attempts"].as_u64() > Some(0))
        .and_then(|d| d["id"].as_str().map(str::to_owned))
        .expect("the delivery tried while the receiver was down");
    let started = Instant::now();
    let retried = api
        .post(
            &format!("/v1/webhooks/{webhook}/deliveries/{head}/retry"),
            Value::Null,
        )
        .await;
    assert!(retried.status.is_success(), "{}", retried.body);
    receiver
        .wait_for("the backlog", Duration::from_secs(600), |a| {
            a.len() >= BACKLOG
        })
        .await;
    let drained = started.elapsed().as_secs_f64();

    // New mail arriving one message at a time.
    let mut delays = Vec::new();
    let mut imap = setup.imap("alice").await;
    for i in 0..ARRIVALS {
        let before = receiver.accepted().len();
        let raw = mail(
            &format!("arrival-{i}@client.test"),
            &format!("arrival {i}"),
            "dan@client.test",
            "alice@example.test",
            0,
        );
        let at = Instant::now();
        imap.append("INBOX", "", &days_ago(0), &raw).await;
        receiver
            .wait_for("the new message", Duration::from_secs(60), |a| {
                a.len() > before
            })
            .await;
        delays.push(at.elapsed());
        // Arrivals land anywhere in the sync interval.
        tokio::time::sleep(Duration::from_millis(137 * (i as u64 % 7))).await;
    }
    imap.logout().await;
    delays.sort();
    let ms = |d: Duration| round(d.as_secs_f64() * 1000.0);

    let lines = [
        json!({"metric": "webhook_backlog_deliveries", "value": BACKLOG, "unit": "deliveries", "target": null}),
        json!({"metric": "webhook_backlog_seconds", "value": round(drained), "unit": "s", "target": null}),
        json!({"metric": "webhook_deliveries_per_second", "value": round(BACKLOG as f64 / drained), "unit": "deliveries/s", "target": null}),
        json!({"metric": "webhook_arrival_delay_p50_ms", "value": ms(percentile(&delays, 0.5)), "unit": "ms", "target": "sync.interval_secs = 1"}),
        json!({"metric": "webhook_arrival_delay_p99_ms", "value": ms(percentile(&delays, 0.99)), "unit": "ms", "target": "sync.interval_secs = 1"}),
        json!({"metric": "webhook_arrival_delay_max_ms", "value": ms(*delays.last().unwrap()), "unit": "ms", "target": null}),
    ];
    bench::record("webhooks.jsonl", &lines);
    setup.mailroom.stop().await;
}
