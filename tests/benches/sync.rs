//! Initial and incremental sync against the local Dovecot over TLS, side by side with a raw
//! ceiling client and mbsync, on two corpora of 10,000 messages (see `corpus`).
//!
//! `scripts/bench.sh` fetches the corpus and isync and builds the release binary; then
//! `cargo bench -p mailroom-tests --bench sync` writes one JSON line per metric to
//! `bench/results/sync.jsonl`. Mailroom runs as its own process (the release `mailroom`
//! binary), so its peak RSS is its own.

use mailroom_tests::corpus;
use mailroom_tests::imap::ImapClient;
use mailroom_tests::mailbox::days_ago;
use mailroom_tests::mailroom::{ADMIN_TOKEN, Api};
use mailroom_tests::servers::{MailServers, Options, User};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const MESSAGES: usize = 10_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Results {
    lines: Vec<String>,
}

impl Results {
    /// Every run's value of a metric, in the order they ran.
    fn record_runs(&mut self, metric: &str, values: &[f64]) {
        let values: Vec<f64> = values
            .iter()
            .map(|v| (v * 1000.0).round() / 1000.0)
            .collect();
        let line = json!({"metric": metric, "runs": values});
        println!("{line}");
        self.lines.push(line.to_string());
    }

    fn record(&mut self, metric: &str, value: f64, unit: &str, target: Option<&str>) {
        let line = json!({"metric": metric, "value": (value * 1000.0).round() / 1000.0, "unit": unit, "target": target});
        println!("{line}");
        self.lines.push(line.to_string());
    }
}

/// Appends the corpus to `mailbox` with INTERNALDATEs spread over the last 100 days.
async fn seed(servers: &MailServers, user: &User, mailbox: &str, messages: &[Vec<u8>]) {
    let mut imap = ImapClient::login(servers.imap_port(), &user.email, &user.password).await;
    if mailbox != "INBOX" {
        imap.run(&format!("CREATE {mailbox}")).await;
    }
    let total = messages.len() as i64;
    for (i, raw) in messages.iter().enumerate() {
        let age = 100 - (i as i64 * 100 / total);
        imap.append(mailbox, "", &days_ago(age), raw).await;
    }
    imap.logout().await;
}

/// The ceiling: one `UID FETCH 1:* (BODY.PEEK[])` over TLS, bytes read and thrown away.
async fn raw_ceiling(servers: &MailServers, user: &User) -> (Duration, u64) {
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustLoopback(
            rustls::crypto::ring::default_provider(),
        )))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let started = Instant::now();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", servers.imaps_port()))
        .await
        .expect("IMAPS");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
    let tls = connector.connect(name, tcp).await.expect("TLS");
    let mut stream = BufReader::with_capacity(1 << 20, tls);
    let mut line = Vec::new();
    stream.read_until(b'\n', &mut line).await.expect("greeting");
    let login = format!(
        "a LOGIN \"{}\" \"{}\"\r\nb SELECT INBOX\r\nc UID FETCH 1:* (BODY.PEEK[])\r\n",
        user.email, user.password
    );
    stream
        .get_mut()
        .write_all(login.as_bytes())
        .await
        .expect("write");
    let mut bytes = 0u64;
    let mut sink = vec![0u8; 1 << 20];
    loop {
        line.clear();
        stream.read_until(b'\n', &mut line).await.expect("a line");
        if line.starts_with(b"c ") {
            break;
        }
        // A literal follows `{n}` at the end of a line.
        if line.ends_with(b"}\r\n")
            && let Some(open) = line.iter().rposition(|&b| b == b'{')
        {
            let n: usize = std::str::from_utf8(&line[open + 1..line.len() - 3])
                .ok()
                .and_then(|t| t.parse().ok())
                .expect("a literal length");
            let mut left = n;
            while left > 0 {
                let take = left.min(sink.len());
                stream.read_exact(&mut sink[..take]).await.expect("literal");
                left -= take;
            }
            bytes += n as u64;
        }
    }
    (started.elapsed(), bytes)
}

/// The ceiling client talks only to the test Dovecot on loopback, whose self-signed
/// certificate rustls would refuse as a CA used as an end entity: it checks signatures, not
/// the chain.
#[derive(Debug)]
struct TrustLoopback(rustls::crypto::CryptoProvider);

impl rustls::client::danger::ServerCertVerifier for TrustLoopback {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// mbsync pulling INBOX into a fresh Maildir.
fn mbsync(servers: &MailServers, user: &User, fsync: bool) -> Duration {
    let dir = tempfile::tempdir().expect("a directory");
    let maildir = dir.path().join("mail");
    std::fs::create_dir_all(&maildir).expect("a maildir");
    let rc = dir.path().join("mbsyncrc");
    let config = format!(
        "FSync {fsync}\n\n\
IMAPAccount bench\nHost localhost\nPort {port}\nUser {user}\nPass {pass}\nSSLType IMAPS\n\
CertificateFile {cert}\n\n\
IMAPStore remote\nAccount bench\n\n\
MaildirStore local\nPath {maildir}/\nInbox {maildir}/INBOX\n\n\
Channel pull\nFar :remote:\nNear :local:\nPatterns INBOX\nSync Pull\nCreate Near\nSyncState *\n",
        fsync = if fsync { "yes" } else { "no" },
        port = servers.imaps_port(),
        user = user.email,
        pass = user.password,
        cert = servers.cert_path().display(),
        maildir = maildir.display(),
    );
    std::fs::write(&rc, config).expect("mbsyncrc");
    let started = Instant::now();
    let output = Command::new("mbsync")
        .arg("-q")
        .arg("-c")
        .arg(&rc)
        .arg("pull")
        .output()
        .expect("mbsync runs (scripts/bench.sh installs isync)");
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "mbsync failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

/// The release `mailroom` binary serving a fresh data directory.
struct Server {
    child: Child,
    api: Api,
    _data: tempfile::TempDir,
}

impl Server {
    async fn start(servers: &MailServers) -> Self {
        let data = tempfile::tempdir().expect("a data directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = data.path().join("mailroom.toml");
        std::fs::write(&config, "[sync]\ninterval_secs = 3600\n").expect("a config file");
        let binary = workspace().join("target/release/mailroom");
        assert!(
            binary.exists(),
            "build it first: cargo build --release -p mailroom"
        );
        let child = Command::new(binary)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(data.path())
            .arg("--ca-file")
            .arg(servers.cert_path())
            .arg("--config")
            .arg(&config)
            .env("MAILROOM_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mailroom starts");
        let api = Api::new(&format!("http://127.0.0.1:{port}"));
        let deadline = Instant::now() + Duration::from_secs(120);
        while reqwest::get(api.url("/healthz")).await.is_err() {
            assert!(Instant::now() < deadline, "mailroom did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            api,
            _data: data,
        }
    }

    /// Peak resident memory of the server process so far, in MB.
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process status");
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM");
        kb / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects `user`'s INBOX only (as mbsync syncs INBOX), from 6 months back.
async fn connect(api: &Api, servers: &MailServers, user: &User) -> String {
    let connection = json!({"connector": "imap", "email": user.email, "password": user.password,
        "imap": {"host": "localhost", "port": servers.imaps_port(), "encryption": "ssl"},
        "smtp": {"host": "localhost", "port": servers.smtps_port(), "encryption": "ssl"}});
    let test = api.post("/v1/accounts/test", connection.clone()).await;
    let inbox = test.body["folders"]
        .as_array()
        .expect("folders")
        .iter()
        .find(|f| f["role"] == "inbox")
        .expect("an inbox")["id"]
        .clone();
    let mut body = connection;
    body["kind"] = json!("personal");
    body["sync_from"] = json!("6_months");
    body["active_folders"] = json!([inbox]);
    let created = api.post("/v1/accounts", body).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.body);
    created.body["id"].as_str().expect("an id").to_owned()
}

async fn held(api: &Api, account: &str) -> u64 {
    let folders = api.get(&format!("/v1/accounts/{account}/folders")).await;
    folders.body["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|f| f["total"].as_u64()).sum())
        .unwrap_or(0)
}

/// Initial sync: time to the newest 1,000 messages and to the whole folder.
async fn initial_sync(
    api: &Api,
    servers: &MailServers,
    user: &User,
    count: usize,
) -> (String, Duration, Duration) {
    let started = Instant::now();
    let account = connect(api, servers, user).await;
    let mut first_thousand = None;
    loop {
        let body: Value = api.get(&format!("/v1/accounts/{account}")).await.body;
        let n = held(api, &account).await;
        if first_thousand.is_none() && n >= 1000 {
            first_thousand = Some(started.elapsed());
        }
        if body["state"] == "active" && n as usize >= count {
            return (
                account,
                first_thousand.unwrap_or(started.elapsed()),
                started.elapsed(),
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "the sync did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Median duration of `runs` no-change syncs, as the server measured them.
async fn no_change_sync_ms(api: &Api, account: &str, runs: usize) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let body = api.sync(account).await;
        samples.push(body["last_sync_duration_ms"].as_f64().expect("a duration"));
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// The median of `samples`.
fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}

/// One tool's runs on one corpus: every run's duration kept, the median compared.
#[derive(Default)]
struct Runs(Vec<f64>);

impl Runs {
    fn push(&mut self, elapsed: Duration) {
        self.0.push(elapsed.as_secs_f64());
    }

    fn median(&self) -> f64 {
        median(&self.0)
    }

    /// Records the runs' seconds and the median's rates.
    fn record(&self, results: &mut Results, prefix: &str, n: f64, mb: f64, target: Option<&str>) {
        results.record_runs(&format!("{prefix}.runs_s"), &self.0);
        let median = self.median();
        results.record(&format!("{prefix}.msgs_per_s"), n / median, "msg/s", target);
        results.record(&format!("{prefix}.mb_per_s"), mb / median, "MB/s", target);
    }
}

async fn corpus_run(
    results: &mut Results,
    name: &str,
    servers: &MailServers,
    user: &User,
    messages: &[Vec<u8>],
) {
    let total_bytes: u64 = messages.iter().map(|m| m.len() as u64).sum();
    eprintln!(
        "{name}: seeding {} messages, {:.0} MB",
        messages.len(),
        total_bytes as f64 / 1e6
    );
    seed(servers, user, "INBOX", messages).await;
    let mb = total_bytes as f64 / 1e6;
    let n = messages.len() as f64;
    results.record(&format!("{name}.corpus_mb"), mb, "MB", None);

    // Each tool runs in turn, `runs()` rounds; the medians are compared.
    let (mut raw, mut fsync_no, mut fsync_yes, mut mailroom) = (
        Runs::default(),
        Runs::default(),
        Runs::default(),
        Runs::default(),
    );
    let (mut newest, mut no_change, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..runs() {
        eprintln!("{name}: round {}", round + 1);
        raw.push(raw_ceiling(servers, user).await.0);
        fsync_no.push(mbsync(servers, user, false));
        fsync_yes.push(mbsync(servers, user, true));
        let server = Server::start(servers).await;
        let (account, first, all) = initial_sync(&server.api, servers, user, messages.len()).await;
        mailroom.push(all);
        newest.push(first.as_secs_f64());
        no_change.push(no_change_sync_ms(&server.api, &account, 9).await);
        rss.push(server.peak_rss_mb());
    }
    raw.record(results, &format!("{name}.raw_ceiling"), n, mb, None);
    fsync_no.record(results, &format!("{name}.mbsync_fsync_no"), n, mb, None);
    fsync_yes.record(results, &format!("{name}.mbsync_fsync_yes"), n, mb, None);
    mailroom.record(
        results,
        &format!("{name}.mailroom"),
        n,
        mb,
        Some(">= mbsync_fsync_no"),
    );
    results.record(
        &format!("{name}.mailroom.vs_mbsync_fsync_no"),
        fsync_no.median() / mailroom.median(),
        "ratio",
        Some(">= 1.0"),
    );
    results.record(
        &format!("{name}.mailroom.vs_raw_ceiling"),
        raw.median() / mailroom.median(),
        "ratio",
        Some(">= 0.6 (stretch)"),
    );
    results.record_runs(
        &format!("{name}.mailroom.newest_1000_visible_runs_s"),
        &newest,
    );
    results.record(
        &format!("{name}.mailroom.newest_1000_visible_s"),
        median(&newest),
        "s",
        Some("<= 0.5"),
    );
    results.record_runs(
        &format!("{name}.mailroom.no_change_sync_qresync_runs_ms"),
        &no_change,
    );
    results.record(
        &format!("{name}.mailroom.no_change_sync_qresync_ms"),
        median(&no_change),
        "ms",
        Some("<= 5 per folder"),
    );
    results.record_runs(&format!("{name}.mailroom.peak_rss_runs_mb"), &rss);
    results.record(
        &format!("{name}.mailroom.peak_rss_mb"),
        rss.iter().copied().fold(0.0, f64::max),
        "MB",
        Some("<= 120"),
    );
}

/// How many rounds each tool runs (`MAILROOM_BENCH_RUNS`, 3 by default).
fn runs() -> usize {
    env_number("MAILROOM_BENCH_RUNS", 3)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// Whether `part` runs: `MAILROOM_BENCH_ONLY` lists the parts to run (`small`, `heavy`,
/// `no_condstore`), all of them when unset.
fn selected(part: &str) -> bool {
    std::env::var("MAILROOM_BENCH_ONLY")
        .map(|only| only.split(',').any(|p| p.trim() == part))
        .unwrap_or(true)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let corpus_dir = std::env::var("MAILROOM_BENCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("bench/corpus/package/data"));
    let real = corpus::spamassassin(&corpus_dir);
    eprintln!("{} messages from the SpamAssassin corpus", real.len());
    let mut results = Results { lines: Vec::new() };
    results.record("spamassassin_messages", real.len() as f64, "messages", None);
    let count = env_number("MAILROOM_BENCH_MESSAGES", MESSAGES);

    let servers = MailServers::start();
    if selected("small") {
        let small = corpus::small(&real, count);
        let user = servers.user("alice");
        corpus_run(&mut results, "small", &servers, &user, &small).await;
    }
    if selected("heavy") {
        let heavy = corpus::heavy(&real, count);
        let user = servers.user("bob");
        corpus_run(&mut results, "heavy", &servers, &user, &heavy).await;
    }
    drop(servers);

    // A server without CONDSTORE: the no-change sync compares UID and flag sets.
    if selected("no_condstore") {
        let plain = MailServers::start_with(Options {
            condstore: false,
            ..Options::default()
        });
        let carol = plain.user("carol");
        let big = corpus::small(&real, 2 * count);
        seed(&plain, &carol, "INBOX", &big).await;
        let server = Server::start(&plain).await;
        let (account, _, _) = initial_sync(&server.api, &plain, &carol, big.len()).await;
        let samples = no_change_sync_ms(&server.api, &account, 9).await;
        results.record(
            &format!("no_condstore_{}.no_change_sync_ms", big.len()),
            samples,
            "ms",
            Some("<= 20"),
        );
    }

    // A partial run (fewer messages, some parts) is written beside the target directory's
    // other output, not over the recorded results.
    let whole = count == MESSAGES && std::env::var_os("MAILROOM_BENCH_ONLY").is_none();
    let out = if whole {
        workspace().join("bench/results/sync.jsonl")
    } else {
        workspace().join("target/bench-sync.jsonl")
    };
    std::fs::create_dir_all(out.parent().expect("a directory")).expect("the results directory");
    let mut file = std::fs::File::create(&out).expect("the results file");
    for line in &results.lines {
        writeln!(file, "{line}").expect("write");
    }
    eprintln!("written to {}", out.display());
}
