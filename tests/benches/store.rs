//! The state in PostgreSQL beside the embedded redb file, on this machine: the first sync of
//! 20 mailboxes (throughput in messages a second), the API's latency once they are in, and
//! how the first sync's throughput changes from one node to two on one database.
//!
//! PostgreSQL is the tests' own cluster, here with `fsync` and synchronous commits on (as
//! redb commits durably). `cargo bench -p mailroom-tests --bench store` (or
//! `scripts/bench.sh`) appends one JSON line per metric to `bench/results/store.jsonl`;
//! `MAILROOM_BENCH_MESSAGES` changes the messages per mailbox (default 500).

use mailroom::config::StoreBackend;
use mailroom::{Config, Server};
use mailroom_tests::bench::{self, round};
use mailroom_tests::load::percentile;
use mailroom_tests::mailbox::create_account;
use mailroom_tests::mailroom::{Api, SHARED_KEY, bootstrap, test_config};
use mailroom_tests::postgres;
use mailroom_tests::servers::{MailServers, Options};
use serde_json::json;
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 20;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let each: usize = std::env::var("MAILROOM_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let servers = MailServers::start_with(Options {
        extra_users: ACCOUNTS,
        ..Options::default()
    });
    for n in 0..ACCOUNTS {
        let user = servers.extra_user(n);
        servers.fill_inbox(&user.email, each, |i| bench::message(i, &user.email));
    }
    let mut lines = Vec::new();
    for (setup, backend, nodes) in [
        ("redb", StoreBackend::Redb, 1),
        ("postgres", StoreBackend::Postgres, 1),
        ("postgres_2_nodes", StoreBackend::Postgres, 2),
    ] {
        let url = (backend == StoreBackend::Postgres).then(postgres::durable_database);
        let dirs: Vec<_> = (0..nodes).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut started = Vec::new();
        for dir in &dirs {
            let mut config = test_config(dir.path());
            config.ca_file = Some(servers.cert_path().to_owned());
            config.store.backend = backend;
            config.store.postgres.url = url.clone();
            config.store.postgres.lease_secs = 6;
            config.sync.interval_secs = 3600;
            started.push(start(&config).await);
        }
        let apis: Vec<Api> = started
            .iter()
            .map(|s| Api::new(&format!("http://{}", s.addr())))
            .collect();

        // The first sync of every mailbox, the accounts connected through each node in turn.
        let began = Instant::now();
        let mut accounts = Vec::new();
        for n in 0..ACCOUNTS {
            let user = servers.extra_user(n);
            let fields = json!({"kind": "shared", "sync_from": "6_months"});
            accounts.push(create_account(&apis[n % nodes], &servers, &user, fields).await);
        }
        for account in &accounts {
            let left = Duration::from_secs(1800).saturating_sub(began.elapsed());
            apis[0].wait_for_state(account, "active", left).await;
        }
        let seconds = began.elapsed().as_secs_f64();
        let held: usize = {
            let mut held = 0;
            for account in &accounts {
                held += apis[0].messages(account, "").await.len();
            }
            held
        };
        assert_eq!(held, ACCOUNTS * each, "every message is in");
        lines.push(
            json!({"metric": "first_sync", "setup": setup, "nodes": nodes,
            "accounts": ACCOUNTS, "messages": held, "seconds": round(seconds),
            "messages_per_sec": round(held as f64 / seconds)}),
        );

        // The API once the mail is in: a page of messages and the accounts list, one request
        // at a time, spread over the nodes.
        for (what, path) in [
            (
                "messages_page",
                format!("/v1/accounts/{}/messages?limit=50", accounts[0]),
            ),
            ("accounts_list", "/v1/accounts?limit=50".to_owned()),
        ] {
            let mut times = Vec::new();
            for i in 0..400 {
                let at = Instant::now();
                let answer = apis[i % nodes].get(&path).await;
                assert!(answer.status.is_success(), "{}", answer.body);
                times.push(at.elapsed());
            }
            times.sort();
            let ms = |d: Duration| round(d.as_secs_f64() * 1000.0);
            lines.push(
                json!({"metric": "api_latency_ms", "setup": setup, "nodes": nodes,
                "request": what, "p50": ms(percentile(&times, 0.5)),
                "p99": ms(percentile(&times, 0.99))}),
            );
        }
        for server in started {
            server.stop().await;
        }
    }
    bench::record("store.jsonl", &lines);
}

async fn start(config: &Config) -> Server {
    Server::start(config, &bootstrap(Some(SHARED_KEY)))
        .await
        .expect("the server starts")
}
