//! Latency of `GET /v1/accounts` with 100 accounts under concurrent load, and the memory of
//! the idle server. The server is the release `mailroom` binary in its own process (build it
//! first: `scripts/bench.sh` does); the load comes from this process.
//!
//! Results go to `bench/results/accounts_list.md`.

use mailroom_tests::load::{get_latencies, percentile};
use mailroom_tests::process::{memory_kib, release_binary};
use mailroom_tests::servers::MailServers;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 100;
const CLIENTS: usize = 32;
const REQUESTS_PER_CLIENT: usize = 200;
const TOKEN: &str = "mr_bench_admin_token";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let servers = MailServers::start();
    let data = tempfile::tempdir().expect("a data directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = data.path().join("config.toml");
    std::fs::write(&config, "[api]\nconnection_tests_per_minute = 10000\n").expect("a config file");
    let mut server = Command::new(release_binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data.path())
        .arg("--ca-file")
        .arg(servers.cert_path())
        .arg("--config")
        .arg(&config)
        .env("MAILROOM_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mailroom starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "mailroom did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = memory_kib(server.id(), "VmRSS");

    let alice = servers.user("alice");
    for _ in 0..ACCOUNTS {
        let created: Value = http
            .post(format!("{base}/v1/accounts"))
            .bearer_auth(TOKEN)
            .json(&json!({
                "connector": "imap", "email": alice.email, "password": alice.password,
                "imap": {"host": "localhost", "port": servers.imaps_port(), "encryption": "ssl"},
                "smtp": {"host": "localhost", "port": servers.smtps_port(), "encryption": "ssl"},
                "kind": "shared", "sync_from": "1_month",
            }))
            .send()
            .await
            .expect("an answer")
            .json()
            .await
            .expect("JSON");
        assert!(created["id"].is_string(), "{created}");
    }

    let load_started = Instant::now();
    let url = format!("{base}/v1/accounts?limit=100");
    let latencies = get_latencies(&http, &url, TOKEN, CLIENTS, REQUESTS_PER_CLIENT, 1000).await;
    let elapsed = load_started.elapsed();
    let loaded_rss = memory_kib(server.id(), "VmRSS");
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();

    let report = format!(
        "# Accounts list benchmark\n\n\
         `GET /v1/accounts?limit=100` with {ACCOUNTS} accounts, {CLIENTS} concurrent clients x \
         {REQUESTS_PER_CLIENT} requests, release build, server in its own process on loopback.\n\n\
         | what | value |\n|---|---|\n\
         | p50 latency | {:.2} ms |\n| p99 latency | {:.2} ms |\n| max latency | {:.2} ms |\n\
         | throughput | {:.0} requests/s |\n\
         | idle server RSS (after start, built-in connectors compiled) | {:.1} MiB |\n\
         | server RSS after the load | {:.1} MiB |\n",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().expect("samples").as_secs_f64() * 1e3,
        latencies.len() as f64 / elapsed.as_secs_f64(),
        idle_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0,
    );
    print!("{report}");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    std::fs::create_dir_all(&dir).expect("a results directory");
    std::fs::write(dir.join("accounts_list.md"), report).expect("the results are written");
}
