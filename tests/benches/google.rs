//! The first sync of a Gmail mailbox of 10,000 messages from the fake Google with Gmail's
//! per-user quota enforced (250 units per second), beside the least time that quota allows
//! for the same work: every message fetched once (`messages.get`, 5 units), the listing
//! (`messages.list`, 5 units per page of 500), the profile and labels (1 unit each).
//!
//! `cargo bench -p mailroom-tests --bench google` (or `scripts/bench.sh`) appends one JSON
//! line per metric to `bench/results/google.jsonl`.

use mailroom_tests::bench::{self, round};
use mailroom_tests::google::{ANN, Google, Options};
use serde_json::json;
use std::time::{Duration, Instant};

const MESSAGES: usize = 10_000;
const QUOTA: u32 = 250;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let google = Google::start_with(
        Options {
            quota_units_per_second: Some(QUOTA),
            ..Options::default()
        },
        |config| {
            config.sync.job_budget_secs = 600;
            config.sandbox.job_timeout_ms = 900_000;
        },
    )
    .await;
    for i in 0..MESSAGES {
        google.fake.insert(
            ANN,
            &bench::message(i, ANN),
            &["INBOX"],
            bench::received_ms(i),
        );
    }
    google.fake.reset_stats();

    let started = Instant::now();
    let created = google
        .sign_in(json!({"kind": "personal", "sync_from": "6_months"}))
        .await;
    assert!(created.status.is_success(), "{}", created.body);
    let account = created.body["id"].as_str().expect("an id").to_owned();
    google
        .mailroom
        .wait_for_state(&account, "active", Duration::from_secs(1800))
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let held = google.mailroom.messages(&account, "").await.len();
    assert_eq!(held, MESSAGES);
    let stats = google.fake.stats();
    let pages = MESSAGES.div_ceil(500) as u64;
    let minimum_units = MESSAGES as u64 * 5 + pages * 5 + 2;
    let minimum_secs = minimum_units as f64 / f64::from(QUOTA);

    let lines = [
        json!({"metric": "gmail_first_sync_seconds", "value": round(elapsed), "unit": "s",
               "target": format!("<= {:.1} (1.1 x the quota's minimum)", minimum_secs * 1.1)}),
        json!({"metric": "gmail_first_sync_quota_minimum_seconds", "value": round(minimum_secs), "unit": "s", "target": null}),
        json!({"metric": "gmail_first_sync_ratio_to_minimum", "value": round(elapsed / minimum_secs), "unit": "x", "target": "<= 1.1"}),
        json!({"metric": "gmail_first_sync_requests", "value": stats.requests, "unit": "requests",
               "target": format!("minimum {}", MESSAGES as u64 + pages + 2)}),
        json!({"metric": "gmail_first_sync_units", "value": stats.units, "unit": "quota units",
               "target": format!("minimum {minimum_units}")}),
        json!({"metric": "gmail_first_sync_rate_limited", "value": stats.rate_limited, "unit": "answers", "target": null}),
        json!({"metric": "gmail_first_sync_messages_per_second", "value": round(MESSAGES as f64 / elapsed), "unit": "msg/s", "target": null}),
    ];
    bench::record("google.jsonl", &lines);
    google.mailroom.stop().await;
}
