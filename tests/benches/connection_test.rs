//! How long `POST /v1/accounts/test` takes against the local Dovecot and SMTP server (IMAPS
//! login + LIST, SMTPS login), next to the same logins done by hand with `openssl s_client`.
//!
//! `cargo bench -p mailroom-tests --bench connection_test`; the results are written to
//! `bench/results/connection_test.md`.

use mailroom_tests::mailroom::Mailroom;
use mailroom_tests::servers::MailServers;
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 25;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    mailroom_tests::load::percentile(&samples, p)
}

/// One `openssl s_client` session: connect, TLS handshake, the given commands, server closes.
fn s_client(port: u16, cert: &str, input: &str) -> Duration {
    let started = Instant::now();
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-ign_eof",
            "-verify_return_error",
            "-CAfile",
            cert,
        ])
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl runs");
    child
        .stdin
        .take()
        .expect("a stdin")
        .write_all(input.as_bytes())
        .expect("openssl reads its input");
    let status = child.wait().expect("openssl finishes");
    assert!(status.success(), "openssl s_client failed");
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let servers = MailServers::start();
    let cert = servers.cert_path().to_owned();
    let mailroom = Mailroom::start({
        let cert = cert.clone();
        move |config| config.ca_file = Some(cert)
    })
    .await;
    let alice = servers.user("alice");
    let body = json!({
        "connector": "imap",
        "email": alice.email,
        "password": alice.password,
        "imap": {"host": "localhost", "port": servers.imaps_port(), "encryption": "ssl"},
        "smtp": {"host": "localhost", "port": servers.smtps_port(), "encryption": "ssl"},
    });

    let mut mailroom_runs = Vec::with_capacity(RUNS);
    for run in 0..RUNS + 2 {
        let started = Instant::now();
        let answer = mailroom.post("/v1/accounts/test", body.clone()).await;
        let elapsed = started.elapsed();
        assert_eq!(answer.body["ok"], true, "{}", answer.body);
        if run >= 2 {
            mailroom_runs.push(elapsed);
        }
    }
    mailroom.stop().await;

    let cert = cert.to_str().expect("a UTF-8 path");
    let imap_input = format!(
        "a LOGIN {} {}\r\nb LIST \"\" \"*\"\r\nc LOGOUT\r\n",
        alice.email, alice.password
    );
    let plain = {
        use base64::Engine;
        let raw = format!("\0{}\0{}", alice.email, alice.password);
        base64::engine::general_purpose::STANDARD.encode(raw)
    };
    let smtp_input = format!("EHLO bench\r\nAUTH PLAIN {plain}\r\nQUIT\r\n");
    let mut by_hand = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let imap = s_client(servers.imaps_port(), cert, &imap_input);
        let smtp = s_client(servers.smtps_port(), cert, &smtp_input);
        by_hand.push(imap + smtp);
    }

    let report = format!(
        "# Connection test benchmark\n\n\
         `POST /v1/accounts/test` against a local Dovecot (IMAPS login + LIST) and SMTP server\n\
         (SMTPS login), {RUNS} runs after 2 warm-up runs, in-process server, release build.\n\n\
         | what | median | p90 |\n|---|---|---|\n\
         | Mailroom connection test | {:.1} ms | {:.1} ms |\n\
         | `openssl s_client` IMAPS login+LIST+LOGOUT, then SMTPS EHLO+AUTH+QUIT | {:.1} ms | {:.1} ms |\n",
        median(mailroom_runs.clone()).as_secs_f64() * 1e3,
        percentile(mailroom_runs, 0.9).as_secs_f64() * 1e3,
        median(by_hand.clone()).as_secs_f64() * 1e3,
        percentile(by_hand, 0.9).as_secs_f64() * 1e3,
    );
    print!("{report}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    std::fs::create_dir_all(&dir).expect("a results directory");
    std::fs::write(dir.join("connection_test.md"), report).expect("the results are written");
}
