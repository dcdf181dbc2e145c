//! `mailroom serve` as an operator runs it: flags and environment, health, clean exit.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A bare HTTP/1.1 GET; returns the whole response, or None while nothing listens.
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn serve_listens_where_told_and_exits_cleanly_on_sigterm() {
    let data = std::env::temp_dir().join(format!("mailroom-serve-test-{}", std::process::id()));
    let addr = free_addr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["serve", "--data"])
        .arg(&data)
        .env("MAILROOM_LISTEN", addr.to_string())
        .env("MAILROOM_ADMIN_TOKEN", "mr_serve_test")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mailroom starts");

    let deadline = Instant::now() + Duration::from_secs(60);
    let health = loop {
        if let Some(response) = get(addr, "/healthz", None) {
            break response;
        }
        assert!(
            Instant::now() < deadline,
            "mailroom did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let connectors = get(addr, "/v1/connectors", Some("mr_serve_test")).expect("an answer");
    assert!(connectors.contains(r#""id":"imap""#), "{connectors}");

    // While the server runs, connectors are loaded through its API.
    let url = format!("http://{addr}");
    let added = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args([
            "connector",
            "add",
            "--url",
            &url,
            "--token",
            "mr_serve_test",
        ])
        .arg(common::pop3_example())
        .output()
        .expect("mailroom runs");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(String::from_utf8_lossy(&added.stdout).starts_with("pop3\t1.0.0"));
    let connectors = get(addr, "/v1/connectors/pop3", Some("mr_serve_test")).expect("an answer");
    assert!(connectors.starts_with("HTTP/1.1 200"), "{connectors}");
    let offline = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["connector", "list", "--data"])
        .arg(&data)
        .output()
        .expect("mailroom runs");
    assert!(!offline.status.success());
    assert!(String::from_utf8_lossy(&offline.stderr).contains("--url"));

    // While the server runs, the shell tools say why they cannot work on its database.
    let locked = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["user", "list", "--data"])
        .arg(&data)
        .output()
        .expect("mailroom runs");
    assert!(!locked.status.success());
    let message = String::from_utf8_lossy(&locked.stderr);
    assert!(message.contains("in use by another process"), "{message}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait works") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "mailroom did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit}");
    assert!(data.join("cache").exists(), "the data directory was used");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn json_logs_carry_each_request_under_its_id() {
    let data = tempfile::tempdir().expect("a data directory");
    let addr = free_addr();
    let log = data.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["--log-format", "json", "serve", "--data"])
        .arg(data.path().join("data"))
        .env("MAILROOM_LISTEN", addr.to_string())
        .env("MAILROOM_ADMIN_TOKEN", "mr_log_test")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("a log file"))
        .spawn()
        .expect("mailroom starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        if let Some(response) = get(addr, "/v1/connectors", Some("mr_log_test")) {
            break response;
        }
        assert!(Instant::now() < deadline, "mailroom did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    let request_id = answer
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("the answer names its request")
        .trim()
        .to_owned();
    let _ = child.kill();
    let _ = child.wait();

    let text = std::fs::read_to_string(&log).expect("the log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let answered = lines
        .iter()
        .find(|l| l["span"]["id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no line of request {request_id} in {text}"));
    assert_eq!(answered["span"]["name"], "request");
    assert_eq!(answered["fields"]["route"], "/v1/connectors");
    assert_eq!(answered["fields"]["status"], 200);
}
