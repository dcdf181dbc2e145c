//! The first sync of an Outlook mailbox of 10,000 messages from the fake Graph with
//! Outlook's per-mailbox limits enforced (10,000 requests in any 10 minutes, 4 at once),
//! beside the least time those limits allow for the same work: every message's MIME fetched
//! once (`$value`, one request each) and at least one delta call, so that more than 10,000
//! requests means waiting for the first window to pass.
//!
//! `cargo bench -p mailroom-tests --bench microsoft` (or `scripts/bench.sh`) appends one
//! JSON line per metric to `bench/results/microsoft.jsonl`.

use mailroom_tests::bench::{self, round};
use mailroom_tests::microsoft::{ANN, Microsoft, Options};
use serde_json::json;
use std::time::{Duration, Instant};

const MESSAGES: usize = 10_000;
/// Outlook's limit: requests per mailbox in any ten minutes.
const LIMIT: u32 = 10_000;
const WINDOW_SECS: u64 = 600;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let ms = Microsoft::start_with(
        Options {
            requests_per_ten_minutes: Some(LIMIT),
            concurrent_requests: Some(4),
            ..Options::default()
        },
        "common",
        |config| {
            config.sync.job_budget_secs = 1200;
            config.sandbox.job_timeout_ms = 1_500_000;
        },
    )
    .await;
    let inbox = ms.fake.folder_id(ANN, "inbox");
    for i in 0..MESSAGES {
        ms.fake.insert(
            ANN,
            &inbox,
            &bench::message(i, ANN),
            bench::received_ms(i),
            false,
        );
    }
    ms.fake.reset_stats();

    let started = Instant::now();
    let created = ms
        .sign_in(json!({"kind": "personal", "sync_from": "6_months"}))
        .await;
    assert!(created.status.is_success(), "{}", created.body);
    let account = created.body["id"].as_str().expect("an id").to_owned();
    ms.mailroom
        .wait_for_state(&account, "active", Duration::from_secs(1800))
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let held = ms.mailroom.messages(&account, "").await.len();
    assert_eq!(held, MESSAGES);
    let stats = ms.fake.stats();
    let minimum_requests = MESSAGES as u64 + 1;
    let minimum_secs = ((minimum_requests - 1) / u64::from(LIMIT) * WINDOW_SECS) as f64;

    let lines = [
        json!({"metric": "graph_first_sync_seconds", "value": round(elapsed), "unit": "s",
               "target": format!("<= {:.1} (1.1 x the limits' minimum)", minimum_secs * 1.1)}),
        json!({"metric": "graph_first_sync_limit_minimum_seconds", "value": minimum_secs, "unit": "s", "target": null}),
        json!({"metric": "graph_first_sync_ratio_to_minimum", "value": round(elapsed / minimum_secs), "unit": "x", "target": "<= 1.1"}),
        json!({"metric": "graph_first_sync_requests", "value": stats.requests, "unit": "requests",
               "target": format!("minimum {minimum_requests}")}),
        json!({"metric": "graph_first_sync_mime_downloads", "value": stats.value_downloads, "unit": "requests", "target": MESSAGES}),
        json!({"metric": "graph_first_sync_throttled", "value": stats.throttled, "unit": "answers", "target": 0}),
        json!({"metric": "graph_first_sync_max_in_flight", "value": stats.max_in_flight, "unit": "requests", "target": "<= 4"}),
        json!({"metric": "graph_first_sync_messages_per_second", "value": round(MESSAGES as f64 / elapsed), "unit": "msg/s", "target": null}),
    ];
    bench::record("microsoft.jsonl", &lines);
    ms.mailroom.stop().await;
}
