//! What loading and running third-party connectors costs: the time from upload to ready for
//! the example connectors (Rust and Python), a restart with their compiled code cached, a
//! job's instantiation, and the API's latency and the host's memory while 20 jobs of a slow
//! connector wait on their server. The server is the release `mailroom` binary in its own
//! process (`scripts/bench.sh` builds it).
//!
//! Results go to `bench/results/connectors.md`.

use mailroom_tests::examples::{pop3_component, pop3_python_component};
use mailroom_tests::load::{get_latencies, percentile};
use mailroom_tests::mailroom::hostile_sync_connector;
use mailroom_tests::process::{memory_kib, release_binary};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "mr_bench_admin_token";
const SLOW_JOBS: usize = 20;
const CLIENTS: usize = 4;
const REQUESTS_PER_CLIENT: usize = 250;

struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Server {
    /// Starts a server on `data` and waits until it answers; returns it and how long that took.
    async fn start(data: &Path) -> (Self, Duration) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = data.join("config.toml");
        std::fs::write(
            &config,
            "[api]\nconnection_tests_per_minute = 10000\n\
             [sync]\ninterval_secs = 3600\n\
             [sandbox]\njob_timeout_ms = 600000\n",
        )
        .expect("a config file");
        let started = Instant::now();
        let child = Command::new(release_binary())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .arg("--config")
            .arg(&config)
            .env("MAILROOM_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mailroom starts");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        while server
            .http
            .get(server.url("/healthz"))
            .send()
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "mailroom did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (server, started.elapsed())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Uploads a component; returns how long until it was ready.
    async fn upload(&self, component: Vec<u8>) -> Duration {
        let started = Instant::now();
        let response = self
            .http
            .post(self.url("/v1/connectors"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/wasm")
            .body(component)
            .send()
            .await
            .expect("an answer");
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap_or_default()
        );
        started.elapsed()
    }

    fn rss_kib(&self) -> u64 {
        memory_kib(self.child.id(), "VmRSS")
    }

    /// p50 and p99 of `GET /v1/accounts` from a few concurrent clients.
    async fn list_latency(&self) -> (Duration, Duration) {
        let url = self.url("/v1/accounts?limit=100");
        let latencies =
            get_latencies(&self.http, &url, TOKEN, CLIENTS, REQUESTS_PER_CLIENT, 0).await;
        (percentile(&latencies, 0.5), percentile(&latencies, 0.99))
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn hostile_body(mode: &str, port: u16) -> Value {
    json!({
        "connector": "hostile-sync", "email": "bench@example.test", "password": "pw",
        "imap": {"host": "127.0.0.1", "port": port, "encryption": "none"},
        "smtp": {"host": "127.0.0.1", "port": port, "encryption": "none"},
        "settings": {"mode": mode},
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let pop3 = pop3_component(None);
    let python = pop3_python_component();
    let hostile = std::fs::read(hostile_sync_connector()).expect("the test connector");
    let data = tempfile::tempdir().expect("a data directory");

    let (server, first_start) = Server::start(data.path()).await;
    let pop3_ready = server.upload(pop3.clone()).await;
    let python_ready = server.upload(python.clone()).await;
    server.upload(hostile).await;
    server.stop();
    let (server, cached_start) = Server::start(data.path()).await;

    // A connection test that reaches no server: a fresh instance, `check` and the listing.
    let mut tests = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        server
            .call(
                reqwest::Method::POST,
                "/v1/accounts/test",
                Some(hostile_body("empty", 1)),
            )
            .await;
        tests.push(started.elapsed());
    }
    tests.sort();

    // A server that accepts and never speaks: each job waits on it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let silent_port = silent.local_addr().expect("an address").port();
    let mut ids = Vec::new();
    for _ in 0..SLOW_JOBS {
        let mut body = hostile_body("empty", silent_port);
        body["kind"] = json!("shared");
        body["sync_from"] = json!("1_month");
        let created = server
            .call(reqwest::Method::POST, "/v1/accounts", Some(body))
            .await;
        ids.push(created["id"].as_str().expect("an id").to_owned());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = server.rss_kib();
    let (idle_p50, idle_p99) = server.list_latency().await;
    for id in &ids {
        let mut body = hostile_body("stall", silent_port);
        body["password"] = json!("pw");
        server
            .call(
                reqwest::Method::POST,
                &format!("/v1/accounts/{id}/reconnect"),
                Some(body),
            )
            .await;
    }
    let mut waiting = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while waiting.len() < SLOW_JOBS && Instant::now() < deadline {
        if let Ok((stream, _)) = silent.accept() {
            waiting.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_rss = server.rss_kib();
    let (loaded_p50, loaded_p99) = server.list_latency().await;
    server.stop();
    let jobs = waiting.len();
    drop(waiting);

    let report = format!(
        "# Connectors benchmark\n\n\
         Release build, server in its own process on loopback, this machine.\n\n\
         | what | value |\n|---|---|\n\
         | POP3 example (Rust): component size | {:.2} MB |\n\
         | POP3 example (Rust): upload to ready (compile, check, describe, store) | {:.0} ms |\n\
         | POP3 example (Python, componentize-py): component size | {:.2} MB |\n\
         | POP3 example (Python): upload to ready | {:.0} ms |\n\
         | server start, nothing compiled before (built-in IMAP compiled) | {:.0} ms |\n\
         | server start with the three uploads, compiled code cached | {:.0} ms |\n\
         | connection test without a server (instantiate, `check`, listing), p50 / p99 | {:.2} / {:.2} ms |\n\
         | `GET /v1/accounts` with {SLOW_JOBS} idle accounts, p50 / p99 ({CLIENTS} clients) | {:.2} / {:.2} ms |\n\
         | the same while {} jobs wait on a silent server, p50 / p99 | {:.2} / {:.2} ms |\n\
         | host RSS idle / with the waiting jobs | {:.1} / {:.1} MiB |\n\
         | host memory per waiting job | {:.0} KiB |\n",
        pop3.len() as f64 / 1e6,
        ms(pop3_ready),
        python.len() as f64 / 1e6,
        ms(python_ready),
        ms(first_start),
        ms(cached_start),
        ms(tests[tests.len() / 2]),
        ms(tests[(tests.len() - 1) * 99 / 100]),
        ms(idle_p50),
        ms(idle_p99),
        jobs,
        ms(loaded_p50),
        ms(loaded_p99),
        idle_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0,
        (loaded_rss.saturating_sub(idle_rss)) as f64 / jobs.max(1) as f64,
    );
    let results = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    std::fs::create_dir_all(&results).expect("a results directory");
    std::fs::write(results.join("connectors.md"), &report).expect("write the results");
    println!("{report}");
}
