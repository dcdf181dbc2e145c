//! How fast news arrives, and what watching costs.
//!
//! * `imap`: 200 messages delivered one by one into a Dovecot INBOX over LMTP and 50 into a
//!   second active folder, with no sync scheduled (the interval is an hour): the time from
//!   the delivery to the message being in the messages API, and to its `message.created`
//!   reaching a webhook receiver; p50, p99 and max.
//! * `providers`: a message arriving in the fake Gmail and the fake Graph, accounts checked
//!   every `CHECK_SECS`: the time until it is in the messages API, and the requests one
//!   check makes when nothing changed.
//! * `scale`: `SCALE_ACCOUNTS` Dovecot users connected to one Mailroom with push: memory
//!   per idle account, CPU while they idle, the time until all are watched again after a
//!   restart, and the push delay while they are all connected.
//!
//! `cargo bench -p mailroom-tests --bench push` (or `scripts/bench.sh`) appends one JSON
//! line per metric to `bench/results/push.jsonl`; `MAILROOM_BENCH_ONLY=imap,providers,scale`
//! runs a part, and `MAILROOM_BENCH_ACCOUNTS` sets the scale benchmark's account count
//! (a run that changes either writes `target/bench-push.jsonl` instead).

use mailroom_tests::bench::{self, round};
use mailroom_tests::load::percentile;
use mailroom_tests::mailbox::{Setup, mail};
use mailroom_tests::mailroom::Api;
use mailroom_tests::servers::Options;
use mailroom_tests::webhooks::Receiver;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const INBOX_DELIVERIES: usize = 200;
const FOLDER_DELIVERIES: usize = 50;
const CHECK_SECS: u64 = 2;
const PROVIDER_CHANGES: usize = 20;
const SCALE_ACCOUNTS: usize = 1000;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let only = std::env::var("MAILROOM_BENCH_ONLY").ok();
    let runs = |part: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|p| p == part))
    };
    let accounts = std::env::var("MAILROOM_BENCH_ACCOUNTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SCALE_ACCOUNTS);
    let mut lines = Vec::new();
    if runs("imap") {
        lines.extend(imap().await);
    }
    if runs("providers") {
        lines.extend(providers().await);
    }
    if runs("scale") {
        lines.extend(scale::run(accounts).await);
    }
    if only.is_none() && accounts == SCALE_ACCOUNTS {
        bench::record("push.jsonl", &lines);
    } else {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-push.jsonl");
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(path, text).expect("the partial results");
        println!("partial run: {path}");
    }
}

/// A message whose subject is `subject`, to alice.
fn letter(subject: &str) -> Vec<u8> {
    mail(
        &format!("{}@sender.test", subject.replace(' ', "-")),
        subject,
        "sender@elsewhere.test",
        "alice@example.test",
        0,
    )
}

/// Waits until the account's newest messages hold `subject`; how long from `since`.
async fn visible(api: &Api, account: &str, subject: &str, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let page = api
            .get(&format!("/v1/accounts/{account}/messages?limit=5"))
            .await;
        let items = page.body["items"].as_array().cloned().unwrap_or_default();
        if items.iter().any(|m| m["subject"] == subject) {
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "{subject:?} never showed");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// p50, p99 and max of `delays` as metrics named `{name}_…_ms`.
fn spread(name: &str, mut delays: Vec<Duration>, target: Value) -> Vec<Value> {
    delays.sort();
    let ms = |d: Duration| round(d.as_secs_f64() * 1000.0);
    vec![
        json!({"metric": format!("{name}_p50_ms"), "value": ms(percentile(&delays, 0.5)), "unit": "ms", "target": null}),
        json!({"metric": format!("{name}_p99_ms"), "value": ms(percentile(&delays, 0.99)), "unit": "ms", "target": target}),
        json!({"metric": format!("{name}_max_ms"), "value": ms(*delays.last().expect("delays")), "unit": "ms", "target": null}),
        json!({"metric": format!("{name}_samples"), "value": delays.len(), "unit": "deliveries", "target": null}),
    ]
}

async fn imap() -> Vec<Value> {
    let setup = Setup::start_configured(Options::default(), |config| {
        config.push.enabled = true;
        config.sync.page_messages = 500;
    })
    .await;
    let api = &setup.mailroom;
    let mut imap = setup.imap("alice").await;
    imap.run("CREATE Work").await;
    imap.logout().await;
    let receiver = Receiver::start(200).await;
    receiver.subscribe(api, &["message.created"]).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    watching(api, &account, Duration::from_secs(30)).await;
    // Another client idling on the inbox: when Dovecot itself tells of each delivery.
    let told = idle_client(&setup).await;

    let (mut inbox, mut folder, mut hooks) = (Vec::new(), Vec::new(), Vec::new());
    let mut dovecot = Vec::new();
    for i in 0..INBOX_DELIVERIES + FOLDER_DELIVERIES {
        let to_folder = i % 5 == 4;
        let subject = format!("push {i}");
        let before = receiver.accepted().len();
        let raw = letter(&subject);
        let at = Instant::now();
        tokio::task::block_in_place(|| {
            setup
                .servers
                .deliver("alice", to_folder.then_some("Work"), &raw)
        });
        let delay = visible(api, &account, &subject, at).await;
        if to_folder {
            folder.push(delay);
        } else {
            inbox.push(delay);
            dovecot.push(heard(&told, at).await - at);
        }
        let accepted = receiver
            .wait_for("message.created", Duration::from_secs(60), |a| {
                a.len() > before
            })
            .await;
        hooks.push(accepted[before].at.saturating_duration_since(at));
        // Deliveries land anywhere in whatever the host is doing.
        tokio::time::sleep(Duration::from_millis(13 * (i as u64 % 11))).await;
    }
    let all: Vec<Duration> = inbox.iter().chain(&folder).copied().collect();
    let mut lines = Vec::new();
    lines.extend(spread(
        "imap_push_api_inbox",
        inbox,
        json!("<= 1000 (stretch 100)"),
    ));
    lines.extend(spread(
        "imap_push_api_second_folder",
        folder,
        json!("<= 1000 (stretch 100)"),
    ));
    lines.extend(spread(
        "imap_push_api_all",
        all,
        json!("<= 1000 (stretch 100)"),
    ));
    lines.extend(spread(
        "imap_push_webhook",
        hooks,
        json!("<= 1000 (stretch 100)"),
    ));
    lines.extend(spread("imap_dovecot_idle_notice", dovecot, Value::Null));
    setup.mailroom.stop().await;
    lines
}

/// A client idling on alice's inbox; the times it heard of new messages (`EXISTS`).
async fn idle_client(setup: &Setup) -> std::sync::Arc<std::sync::Mutex<Vec<Instant>>> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let user = setup.servers.user("alice");
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", setup.servers.imap_port()))
        .await
        .expect("IMAP answers");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    lines.next_line().await.expect("a greeting");
    for command in [
        format!("a LOGIN {} {}\r\n", user.email, user.password),
        "b EXAMINE INBOX\r\n".to_owned(),
        "c IDLE\r\n".to_owned(),
    ] {
        write
            .write_all(command.as_bytes())
            .await
            .expect("a command");
        while let Some(line) = lines.next_line().await.expect("a reply") {
            if line.starts_with(&command[..2]) || line.starts_with('+') {
                break;
            }
        }
    }
    let told = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let heard = told.clone();
    tokio::spawn(async move {
        let _write = write;
        while let Ok(Some(line)) = lines.next_line().await {
            if line.ends_with(" EXISTS") {
                heard.lock().expect("idle client").push(Instant::now());
            }
        }
    });
    told
}

/// When the idle client heard of news after `at` (waiting for it, at most 10 s).
async fn heard(told: &std::sync::Mutex<Vec<Instant>>, at: Instant) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let first = told
            .lock()
            .expect("idle client")
            .iter()
            .find(|t| **t > at)
            .copied();
        if let Some(heard) = first {
            return heard;
        }
        assert!(
            Instant::now() < deadline,
            "the idle client never heard of it"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until the account is watched.
async fn watching(api: &Api, account: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let body = api.get(&format!("/v1/accounts/{account}")).await.body;
        if body["push"]["state"] == "watching" {
            return;
        }
        assert!(Instant::now() < deadline, "never watched: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn providers() -> Vec<Value> {
    use mailroom_tests::{google, microsoft};
    let checked = |connector: &str| {
        let connector = connector.to_owned();
        move |config: &mut mailroom::Config| {
            config.push.check_secs.insert(connector, CHECK_SECS);
        }
    };
    let target = json!(format!(
        "<= {} (the check interval + 1 s)",
        (CHECK_SECS + 1) * 1000
    ));
    let mut lines = Vec::new();

    let gmail = google::Google::start_with(google::Options::default(), checked("google")).await;
    let account = gmail.connect("1_month").await;
    let mut delays = Vec::new();
    for i in 0..PROVIDER_CHANGES {
        tokio::time::sleep(Duration::from_millis(97 * (i as u64 % 23))).await;
        let subject = format!("gmail {i}");
        let at = Instant::now();
        gmail.fake.insert(
            google::ANN,
            &letter(&subject),
            &["INBOX"],
            time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
        );
        delays.push(visible(&gmail.mailroom, &account, &subject, at).await);
    }
    lines.extend(spread("gmail_check_api", delays, target.clone()));
    let idle = idle_requests(|| gmail.fake.reset_stats(), || gmail.fake.stats().requests).await;
    lines.push(json!({"metric": "gmail_requests_per_quiet_check", "value": idle, "unit": "requests", "target": 1}));
    gmail.mailroom.stop().await;

    let graph = microsoft::Microsoft::start_with(
        microsoft::Options::default(),
        "common",
        checked("microsoft"),
    )
    .await;
    let account = graph.connect("1_month").await;
    let inbox = graph.fake.folder_id(microsoft::ANN, "inbox");
    let folders = graph
        .mailroom
        .get(&format!("/v1/accounts/{account}"))
        .await
        .body["folders"]
        .as_array()
        .map_or(0, |f| f.iter().filter(|f| f["active"] == true).count());
    let mut delays = Vec::new();
    for i in 0..PROVIDER_CHANGES {
        tokio::time::sleep(Duration::from_millis(97 * (i as u64 % 23))).await;
        let subject = format!("graph {i}");
        let at = Instant::now();
        graph.fake.insert(
            microsoft::ANN,
            &inbox,
            &letter(&subject),
            time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
            false,
        );
        delays.push(visible(&graph.mailroom, &account, &subject, at).await);
    }
    lines.extend(spread("graph_check_api", delays, target));
    let idle = idle_requests(|| graph.fake.reset_stats(), || graph.fake.stats().requests).await;
    lines.push(
        json!({"metric": "graph_requests_per_quiet_check", "value": idle, "unit": "requests",
        "target": format!("{folders} (one per active folder)")}),
    );
    graph.mailroom.stop().await;
    lines
}

/// Requests one check makes when nothing changed: those of ten quiet check intervals.
async fn idle_requests(reset: impl Fn(), requests: impl Fn() -> u64) -> f64 {
    const CHECKS: u64 = 10;
    // Starts right after a check.
    tokio::time::sleep(Duration::from_secs(CHECK_SECS)).await;
    reset();
    tokio::time::sleep(Duration::from_secs(CHECK_SECS * CHECKS)).await;
    round(requests() as f64 / CHECKS as f64)
}

mod scale {
    //! Many accounts on one Mailroom, each watched.

    use super::{letter, spread, visible};
    use mailroom_tests::bench::round;
    use mailroom_tests::mailroom::{Api, Mailroom};
    use mailroom_tests::servers::{MailServers, Options};
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    /// Accounts created at once.
    const CREATING: usize = 8;
    const DELIVERIES: usize = 50;
    const IDLE_SECS: u64 = 20;

    pub async fn run(accounts: usize) -> Vec<Value> {
        inotify_instances(2 * accounts + 256);
        let servers = MailServers::start_with(Options {
            extra_users: accounts,
            ..Options::default()
        });
        let ca = servers.cert_path().to_owned();
        let mailroom = Mailroom::start(|config| {
            config.ca_file = Some(ca);
            config.sync.interval_secs = 3600;
            config.push.enabled = true;
            config.api.connection_tests_per_minute = 1_000_000;
            config.api.max_concurrent_tests_per_caller = CREATING;
        })
        .await;
        let baseline = memory_kib("VmRSS");

        let started = Instant::now();
        let ids = create(&mailroom, &servers, accounts).await;
        let created = started.elapsed();
        let watched = until_watched(&mailroom, accounts, Duration::from_secs(1800)).await;
        let all_watching = started.elapsed();
        assert_eq!(watched, accounts);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let resident = memory_kib("VmRSS");
        let per_account = (resident - baseline) as f64 / accounts as f64 / 1024.0;
        let cpu = cpu_share(Duration::from_secs(IDLE_SECS)).await;

        // News for accounts picked across the whole range, while all of them are watched.
        let mut delays = Vec::new();
        for i in 0..DELIVERIES {
            let n = (i * 7919) % accounts;
            let subject = format!("scale {i}");
            let raw = letter(&subject);
            let at = Instant::now();
            let local = servers.extra_user(n).email;
            let local = local.split('@').next().expect("a local part").to_owned();
            tokio::task::block_in_place(|| servers.deliver(&local, None, &raw));
            delays.push(visible(&mailroom, &ids[n], &subject, at).await);
        }

        // A restart: every account is watched again, at the bounded pace of new watches.
        let restarted_at = Instant::now();
        let mailroom = mailroom.restart().await;
        let rewatched = until_watched(&mailroom, accounts, Duration::from_secs(1800)).await;
        let back = restarted_at.elapsed();
        assert_eq!(rewatched, accounts);
        let sessions = servers.all_imap_sessions();
        mailroom.stop().await;

        let mut lines = vec![
            json!({"metric": "scale_accounts", "value": accounts, "unit": "accounts", "target": 1000}),
            json!({"metric": "scale_create_seconds", "value": round(created.as_secs_f64()), "unit": "s", "target": null}),
            json!({"metric": "scale_all_watching_seconds", "value": round(all_watching.as_secs_f64()), "unit": "s", "target": null}),
            json!({"metric": "scale_rss_per_idle_account_mb", "value": round(per_account), "unit": "MB", "target": "<= 1"}),
            json!({"metric": "scale_rss_mb", "value": round(resident as f64 / 1024.0), "unit": "MB", "target": null}),
            json!({"metric": "scale_idle_cpu_percent_of_a_core", "value": round(cpu * 100.0), "unit": "%", "target": null}),
            json!({"metric": "scale_restart_all_watching_seconds", "value": round(back.as_secs_f64()), "unit": "s",
                   "target": format!("paced at [push] starts_per_sec = {}", mailroom::config::PushConfig::default().starts_per_sec)}),
            json!({"metric": "scale_dovecot_imap_sessions_after_restart", "value": sessions, "unit": "sessions", "target": null}),
        ];
        lines.extend(spread(
            "scale_push_api",
            delays,
            json!("<= 1000 (stretch 100)"),
        ));
        lines
    }

    /// Creates one shared account for each benchmark user, a few at a time; their ids.
    async fn create(api: &Api, servers: &MailServers, accounts: usize) -> Vec<String> {
        let mut ids = BTreeMap::new();
        let mut next = 0;
        while next < accounts {
            let batch: Vec<usize> = (next..accounts.min(next + CREATING)).collect();
            next += batch.len();
            let created = futures::future::join_all(batch.iter().map(|&n| {
                let user = servers.extra_user(n);
                api.post(
                    "/v1/accounts",
                    json!({
                        "connector": "imap", "email": user.email, "password": user.password,
                        "imap": {"host": "localhost", "port": servers.imap_port(), "encryption": "none"},
                        "smtp": {"host": "localhost", "port": servers.smtp_plain_port(), "encryption": "none"},
                        "kind": "shared", "sync_from": "1_month",
                    }),
                )
            }))
            .await;
            for (n, answer) in batch.into_iter().zip(created) {
                assert_eq!(answer.status.as_u16(), 201, "{}", answer.body);
                ids.insert(n, answer.body["id"].as_str().expect("an id").to_owned());
            }
        }
        ids.into_values().collect()
    }

    /// Waits until `accounts` accounts are watched (or the limit passes); how many are.
    async fn until_watched(api: &Api, accounts: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let watched = watched(api).await;
            if watched >= accounts || Instant::now() > deadline {
                return watched;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn watched(api: &Api) -> usize {
        let mut count = 0;
        let mut cursor = String::new();
        loop {
            let page = api
                .get(&format!("/v1/accounts?limit=200&cursor={cursor}"))
                .await;
            let items = page.body["items"].as_array().cloned().unwrap_or_default();
            count += items
                .iter()
                .filter(|a| a["push"]["state"] == "watching")
                .count();
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return count,
            }
        }
    }

    /// Dovecot watches a mailbox for an idling session with an inotify instance, all of them
    /// under its one mail user: the kernel's default of 128 a user would leave most of a
    /// thousand sessions unwatched (Dovecot then logs "Inotify instance limit ... exceeded"
    /// and tells them nothing). Raised as a mail server with many idling users must be.
    fn inotify_instances(wanted: usize) {
        const LIMIT: &str = "/proc/sys/fs/inotify/max_user_instances";
        let now: usize = std::fs::read_to_string(LIMIT)
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        if now < wanted {
            std::fs::write(LIMIT, wanted.to_string())
                .unwrap_or_else(|e| panic!("cannot raise {LIMIT} to {wanted} (run as root): {e}"));
        }
    }

    /// A field of this process's `/proc/self/status`, in KiB.
    fn memory_kib(field: &str) -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .expect("the process status")
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("the field")
    }

    /// The share of one core this process used over `span`.
    async fn cpu_share(span: Duration) -> f64 {
        let ticks = || -> u64 {
            let stat = std::fs::read_to_string("/proc/self/stat").expect("the process stat");
            // The fields after the command name (which is in parentheses): utime is the 14th.
            let after = stat.rsplit_once(')').expect("a command name").1;
            let fields: Vec<&str> = after.split_whitespace().collect();
            fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
        };
        let before = ticks();
        tokio::time::sleep(span).await;
        // The kernel counts in clock ticks of 1/100 s on Linux.
        (ticks() - before) as f64 / 100.0 / span.as_secs_f64()
    }
}
