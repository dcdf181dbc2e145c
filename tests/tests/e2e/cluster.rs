//! Mailroom on PostgreSQL: the backend keeps the seam's promises, a deployment moves
//! between the embedded file and a database and back, and two nodes on one database share
//! the accounts, serve the same data, and take over from each other.
//!
//! These tests always use the tests' own PostgreSQL, whichever backend the rest of the
//! suite runs on. The nodes of the two-node test run in child processes (this test binary
//! started again to run only `node_process`), so that one can be killed with SIGKILL.

use crate::webhooks::all_events;
use mailroom::Server;
use mailroom::config::StoreBackend;
use mailroom::store::kv::conformance;
use mailroom::store::{PostgresStore, RedbStore, copy};
use mailroom_tests::imap::{ImapClient, message};
use mailroom_tests::mailbox::{create_account, rfc2822_days_ago};
use mailroom_tests::mailroom::{Api, SERVICE_TOKEN, SHARED_KEY, bootstrap, test_config};
use mailroom_tests::postgres;
use mailroom_tests::process::ChildServer;
use mailroom_tests::servers::{MailServers, Options};
use mailroom_tests::webhooks::Receiver;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DATA_ENV: &str = "MAILROOM_NODE_TEST_DATA";
const URL_ENV: &str = "MAILROOM_NODE_TEST_DATABASE";
const CA_ENV: &str = "MAILROOM_NODE_TEST_CA";
/// The nodes' lease: a killed node's accounts move within it.
const LEASE_SECS: u64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_seams_promises() {
    let url = postgres::fresh_database();
    let store = PostgresStore::connect(&url, 4).await.expect("connects");
    conformance::a_backend_keeps_ordered_tables_in_transactions(store.into_backend()).await;
}

/// A server on `data` (trusting `ca`) with the test tokens, its state in the database at
/// `url` or else in the data directory, and its API.
async fn start_on(data: &Path, ca: &Path, url: Option<&str>) -> Result<(Server, Api), String> {
    let mut config = test_config(data);
    config.ca_file = Some(ca.to_owned());
    config.store.backend = match url {
        Some(_) => StoreBackend::Postgres,
        None => StoreBackend::Redb,
    };
    config.store.postgres.url = url.map(str::to_owned);
    Server::start(&config, &bootstrap(None))
        .await
        .map(|server| {
            let api = Api::new(&format!("http://{}", server.addr()));
            (server, api)
        })
        .map_err(|e| format!("{e:#}"))
}

/// What the API shows of a deployment: its accounts, without what changes with every sync
/// (its time) or belongs to the serving node (`push`), and every account's messages.
async fn contents(api: &Api) -> (Vec<Value>, BTreeMap<String, Vec<Value>>) {
    let accounts = api.get("/v1/accounts?limit=500").await;
    assert_eq!(accounts.status, StatusCode::OK, "{}", accounts.body);
    let mut accounts = accounts.body["items"].as_array().unwrap().clone();
    let mut messages = BTreeMap::new();
    for account in &mut accounts {
        let fields = account.as_object_mut().unwrap();
        for volatile in ["push", "last_sync_at", "last_sync_duration_ms"] {
            fields.remove(volatile);
        }
        let id = account["id"].as_str().unwrap().to_owned();
        messages.insert(id.clone(), api.messages(&id, "").await);
    }
    (accounts, messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_moves_to_postgres_and_back_without_a_new_sync() {
    let servers = MailServers::start();
    let alice = servers.user("alice");
    let mut imap = ImapClient::login(servers.imap_port(), &alice.email, &alice.password).await;
    for i in 0..40 {
        let raw = message(
            &format!("m{i}@c"),
            &format!("moving {i}"),
            &rfc2822_days_ago(1),
            "x",
        );
        imap.append("INBOX", "", &mailroom_tests::mailbox::days_ago(1), &raw)
            .await;
    }
    let embedded = tempfile::tempdir().unwrap();
    let (server, api) = start_on(embedded.path(), servers.cert_path(), None)
        .await
        .unwrap();
    let alice = servers.user("alice");
    let account = create_account(&api, &servers, &alice, json!({"kind": "shared"})).await;
    api.sync(&account).await;
    let before = contents(&api).await;
    assert_eq!(before.1[&account].len(), 40);
    server.stop().await;

    // To PostgreSQL: the same accounts and mail, and the account carries on where it was.
    let url = postgres::fresh_database();
    let to = PostgresStore::connect(&url, 4)
        .await
        .unwrap()
        .into_backend();
    let from = RedbStore::open(embedded.path(), 1 << 20)
        .unwrap()
        .into_backend();
    let sums = copy::copy(&from, &to).await.expect("the copy checks out");
    assert!(
        sums.iter()
            .any(|s| s.table == "messages" && s.entries == 40),
        "{sums:?}"
    );
    // A second copy into it is refused: it holds data now.
    let again = copy::copy(&from, &to).await;
    assert!(again.is_err());
    drop((from, to));

    // Another key cannot open what was sealed under this one.
    let other_dir = tempfile::tempdir().unwrap();
    let refused = start_on(other_dir.path(), servers.cert_path(), Some(&url)).await;
    let refusal = refused.err().expect("refused");
    assert!(refusal.contains("does not fit"), "{refusal}");

    // The old data directory's key file goes with it.
    let (server, api) = start_on(embedded.path(), servers.cert_path(), Some(&url))
        .await
        .unwrap();
    assert_eq!(contents(&api).await, before);
    let synced = api.sync(&account).await;
    assert_eq!(synced["state"], "active", "{synced}");
    assert_eq!(
        api.messages(&account, "").await.len(),
        40,
        "nothing fetched twice"
    );

    // A changed flag rewrites the message's own small row, never a row of a body.
    let database = url.rsplit('/').next().unwrap();
    let versions = |table: &str| {
        postgres::cluster().sql(
            database,
            &format!(
                "SELECT string_agg(xmin::text, ',' ORDER BY k) FROM mailroom_kv \
                 WHERE tbl = '{table}'"
            ),
        )
    };
    let (bodies, messages) = (versions("bodies"), versions("messages"));
    let first = before.1[&account][0]["id"].as_str().unwrap().to_owned();
    let marked = api
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/messages/{first}"),
            Some(json!({"seen": true, "flagged": true})),
        )
        .await;
    assert_eq!(marked.status, StatusCode::OK, "{}", marked.body);
    assert_ne!(versions("messages"), messages, "the message's row changed");
    assert_eq!(versions("bodies"), bodies, "no body was written again");
    api.sync(&account).await;
    let before = contents(&api).await;
    server.stop().await;

    // And back into a new data directory (given the key file).
    let back = tempfile::tempdir().unwrap();
    std::fs::copy(
        embedded.path().join("secret.key"),
        back.path().join("secret.key"),
    )
    .unwrap();
    let sums_back = copy::copy(
        &PostgresStore::connect(&url, 4)
            .await
            .unwrap()
            .into_backend(),
        &RedbStore::open(back.path(), 1 << 20)
            .unwrap()
            .into_backend(),
    )
    .await
    .expect("the copy back checks out");
    assert!(
        sums_back
            .iter()
            .any(|s| s.table == "messages" && s.entries == 40),
        "{sums_back:?}"
    );
    let (server, api) = start_on(back.path(), servers.cert_path(), None)
        .await
        .unwrap();
    let after = contents(&api).await;
    assert_eq!(after.1, before.1);
    server.stop().await;
}

/// A node of the test below, in its own process. Does nothing when run on its own.
#[tokio::test]
#[ignore = "started by two_nodes_share_the_accounts_and_one_takes_over_from_a_killed_one"]
async fn node_process() {
    let (Ok(data), Ok(url), Ok(ca)) = (
        std::env::var(DATA_ENV),
        std::env::var(URL_ENV),
        std::env::var(CA_ENV),
    ) else {
        return;
    };
    let mut config = test_config(Path::new(&data));
    config.ca_file = Some(ca.into());
    config.store.backend = StoreBackend::Postgres;
    config.store.postgres.url = Some(url);
    config.store.postgres.lease_secs = LEASE_SECS;
    config.sync.interval_secs = 2;
    // Small pages: many commits, so the kill lands between two of them.
    config.sync.page_messages = 10;
    config.webhooks.first_retry_secs = 1.0;
    let server = Server::start(&config, &bootstrap(Some(SHARED_KEY)))
        .await
        .expect("the node starts");
    println!("listening on {}", server.addr());
    std::future::pending::<()>().await;
}

/// Starts a node on `data` and the database at `url`; returns it and its API.
fn start_node(data: &Path, url: &str, ca: &Path) -> (ChildServer, Api) {
    ChildServer::start(
        "cluster::node_process",
        [
            (DATA_ENV, data.as_os_str()),
            (URL_ENV, OsStr::new(url)),
            (CA_ENV, ca.as_os_str()),
        ],
    )
}

/// How many accounts each node holds, as the database says.
fn leases(database: &str) -> Vec<usize> {
    let out = postgres::cluster().sql(
        database,
        "SELECT count(*) FROM mailroom_kv WHERE tbl = 'leases' \
         AND substring(k from 1 for 7) = 'account'::bytea GROUP BY v ORDER BY 1",
    );
    out.lines().map(|l| l.parse().unwrap()).collect()
}

async fn wait_for_leases(database: &str, wanted: &[usize], limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = leases(database);
        if now == wanted {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "leases {now:?}, not {wanted:?}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_accounts_and_one_takes_over_from_a_killed_one() {
    const ACCOUNTS: usize = 20;
    const EACH: usize = 300;
    let servers = Arc::new(MailServers::start_with(Options {
        extra_users: ACCOUNTS,
        ..Options::default()
    }));
    for n in 0..ACCOUNTS {
        servers.fill_inbox(&servers.extra_user(n).email, EACH, |i| {
            message(
                &format!("u{n}-{i}@c"),
                &format!("old {i}"),
                &rfc2822_days_ago(1),
                "x",
            )
        });
    }
    let url = postgres::fresh_database();
    let database = url.rsplit('/').next().unwrap().to_owned();
    let receiver = Receiver::start(200).await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, api_a) = start_node(a_dir.path(), &url, servers.cert_path());
    let (b, api_b) = start_node(b_dir.path(), &url, servers.cert_path());
    receiver.subscribe(&api_a, &["*"]).await;
    let mut accounts = Vec::new();
    for n in 0..ACCOUNTS {
        // Either node takes the request.
        let api = if n % 2 == 0 { &api_a } else { &api_b };
        let user = servers.extra_user(n);
        accounts.push(create_account(api, &servers, &user, json!({"kind": "shared"})).await);
    }
    wait_for_leases(&database, &[10, 10], Duration::from_secs(30)).await;

    // Mail keeps arriving at every mailbox from now until after the kill.
    let arriving = Arc::new(AtomicBool::new(true));
    let delivering = {
        let (arriving, servers) = (arriving.clone(), servers.clone());
        tokio::task::spawn_blocking(move || {
            let mut n = 0;
            while arriving.load(Ordering::Relaxed) {
                let user = n % ACCOUNTS;
                let raw = message(
                    &format!("new-{n}@c"),
                    &format!("new {n}"),
                    &rfc2822_days_ago(0),
                    "y",
                );
                servers.deliver(&format!("user{user}"), None, &raw);
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };

    // Each account sends one message (to bob) while the first syncs run.
    let bob = servers.user("bob");
    let mut sends = Vec::new();
    for (n, account) in accounts.iter().enumerate() {
        let api = if n % 2 == 0 { &api_b } else { &api_a };
        let queued = api
            .post(
                &format!("/v1/accounts/{account}/send"),
                json!({"to": [{"email": bob.email}], "subject": format!("once {n}"), "text": "Once."}),
            )
            .await;
        assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
        sends.push((
            queued.body["outbox_id"].as_str().unwrap().to_owned(),
            queued.body["message_id"].as_str().unwrap().to_owned(),
        ));
    }

    // B is killed in the middle of the first syncs.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let listed = api_a.get("/v1/accounts?limit=500").await.body["items"].clone();
        let syncing = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "syncing" || a["state"] == "connecting")
            .count();
        let mut held = 0;
        for account in &accounts {
            held += api_a.messages(account, "").await.len();
        }
        if held >= 200 {
            assert!(
                syncing >= 4,
                "the first syncs ended before the kill ({syncing} left)"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the first syncs did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.kill();
    let killed_at = Instant::now();
    // A takes every account within the lease time.
    wait_for_leases(&database, &[ACCOUNTS], Duration::from_secs(LEASE_SECS + 2)).await;
    let took_over = killed_at.elapsed();
    arriving.store(false, Ordering::Relaxed);
    let delivered = delivering.await.unwrap();
    assert!(delivered > 0);

    // Everything each mailbox holds is held once, once a sync that started afterwards
    // caught up.
    for (n, account) in accounts.iter().enumerate() {
        let synced = api_a.sync(account).await;
        assert_eq!(synced["state"], "active", "{synced}");
        let user = servers.extra_user(n);
        let mut imap = ImapClient::login(servers.imap_port(), &user.email, &user.password).await;
        let mut on_server = imap.message_ids("INBOX").await;
        on_server.sort();
        let inbox = api_a.folder_id(account, "INBOX").await;
        let mut held: Vec<String> = api_a
            .messages(account, &format!("&folder={inbox}"))
            .await
            .iter()
            .map(|m| m["message_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        held.sort();
        assert_eq!(held, on_server, "account {n}");
    }

    // Nothing was sent twice: every send is sent (or failed, when the kill interrupted it),
    // and bob holds each message at most once, a sent one exactly once.
    let mut ended = Vec::new();
    for (outbox, _) in &sends {
        ended.push(api_a.wait_for_outbox_end(outbox).await);
    }
    let mut bob_imap = ImapClient::login(servers.imap_port(), &bob.email, &bob.password).await;
    let at_bob = bob_imap.message_ids("INBOX").await;
    let mut outcomes = BTreeMap::<String, usize>::new();
    for ((_, message_id), entry) in sends.iter().zip(ended) {
        *outcomes
            .entry(entry["state"].as_str().unwrap().to_owned())
            .or_default() += 1;
        let copies = at_bob.iter().filter(|id| *id == message_id).count();
        let wanted = if entry["state"] == "sent" { 1 } else { 0 };
        assert!(
            copies <= 1 && copies >= wanted,
            "{copies} copies of {entry}"
        );
    }
    assert!(
        outcomes.get("sent").copied().unwrap_or(0) >= ACCOUNTS - 1,
        "{outcomes:?}"
    );

    // Every event reached the webhook; only an attempt under way at the kill may have
    // arrived twice.
    let events = all_events(&api_a).await;
    receiver
        .wait_for("every event", Duration::from_secs(180), |accepted| {
            let ids: BTreeSet<String> = accepted.iter().map(|r| r.id()).collect();
            ids.len() >= events.len()
        })
        .await;
    let mut posts = BTreeMap::<String, usize>::new();
    for post in receiver.received().iter().filter(|r| r.answered == 200) {
        *posts.entry(post.id()).or_default() += 1;
    }
    let repeated: Vec<_> = posts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.len() <= 1,
        "events delivered more than once: {repeated:?}"
    );

    // B comes back: the accounts are balanced again, and both nodes show the same.
    let (b, api_b) = start_node(b_dir.path(), &url, servers.cert_path());
    let rebalanced = wait_for_leases(&database, &[10, 10], Duration::from_secs(30)).await;
    assert_eq!(contents(&api_a).await, contents(&api_b).await);

    // A long poll on one node wakes for an event written through the other.
    let last = all_events(&api_b).await.last().unwrap()["seq"].clone();
    let poll = {
        let api_b = api_b.clone();
        tokio::spawn(async move {
            let page = api_b
                .call_as(
                    SERVICE_TOKEN,
                    None,
                    reqwest::Method::GET,
                    &format!("/v1/events?after={last}&wait=30"),
                    None,
                )
                .await;
            (page, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let message = api_a.messages(&accounts[0], "").await[0]["id"].clone();
    let changed_at = Instant::now();
    let marked = api_a
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/messages/{}", message.as_str().unwrap()),
            Some(json!({"flagged": true})),
        )
        .await;
    assert_eq!(marked.status, StatusCode::OK, "{}", marked.body);
    let (page, woke_at) = poll.await.unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let woke = woke_at.duration_since(changed_at);
    assert!(
        page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "message.updated" && e["data"]["message_id"] == message),
        "{}",
        page.body
    );
    assert!(
        woke < Duration::from_secs(2),
        "woke {woke:?} after the change"
    );

    // A connector uploaded through one node is loaded by the other; removed, it is gone
    // from both.
    let component = std::fs::read(mailroom_tests::mailroom::http_probe_connector()).unwrap();
    let uploaded = api_a.upload_connector(component, false).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    let connector = uploaded.body["id"].as_str().unwrap().to_owned();
    let on_b = |present: bool| {
        let (api_b, connector) = (api_b.clone(), connector.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let shown = api_b.get(&format!("/v1/connectors/{connector}")).await;
                if (shown.status == StatusCode::OK) == present {
                    return shown.body;
                }
                assert!(Instant::now() < deadline, "node B: {}", shown.body);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(on_b(true).await["digest"], uploaded.body["digest"]);
    let removed = api_a
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/connectors/{connector}"),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    on_b(false).await;
    println!(
        "two nodes: took over {ACCOUNTS} accounts {took_over:?} after the kill (lease {LEASE_SECS} s), \
         rebalanced {rebalanced:?} after the restart, {delivered} deliveries meanwhile, sends {outcomes:?}, \
         a long poll on B woke {woke:?} after a change through A"
    );
    a.kill();
    b.kill();
}
