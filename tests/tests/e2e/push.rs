//! Push against a real Dovecot: mail delivered over LMTP reaches the API with nobody asking
//! for a sync (the scheduler's interval is an hour in these tests), the watch comes back
//! after the server dropped it (and with it a job the server cut off), follows the folders
//! chosen, and an account waiting to be re-connected holds no connection at all.

use mailroom_tests::mailbox::{Setup, create_account, mail};
use mailroom_tests::mailroom::ADMIN_TOKEN;
use mailroom_tests::servers::{Options, User};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The longest a delivery may take to show: far below the hour between scheduled syncs.
const NEWS_WITHIN: Duration = Duration::from_secs(10);

async fn start() -> Setup {
    Setup::start_configured(Options::default(), |config| {
        config.push.enabled = true;
    })
    .await
}

/// Waits until the account's `push` satisfies `done`; returns the account.
async fn push_until(setup: &Setup, account: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + NEWS_WITHIN;
    loop {
        let body = setup
            .mailroom
            .get(&format!("/v1/accounts/{account}"))
            .await
            .body;
        if done(&body["push"]) {
            return body;
        }
        assert!(Instant::now() < deadline, "push never got there: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn watching(push: &Value) -> bool {
    push["state"] == "watching"
}

/// Waits until a message with `subject` is in the account; returns it.
async fn arrives(setup: &Setup, account: &str, subject: &str) -> Value {
    arrives_within(setup, account, subject, NEWS_WITHIN).await
}

async fn arrives_within(setup: &Setup, account: &str, subject: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let found = setup
            .mailroom
            .messages(account, "")
            .await
            .into_iter()
            .find(|m| m["subject"] == subject);
        if let Some(message) = found {
            return message;
        }
        assert!(
            Instant::now() < deadline,
            "{subject:?} did not arrive within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn letter(id: &str) -> Vec<u8> {
    mail(
        &format!("{id}@elsewhere.test"),
        id,
        "sender@elsewhere.test",
        "alice@example.test",
        0,
    )
}

/// Puts `count` messages of a day ago into the user's inbox and creates their account
/// (`kind`), without waiting for its first sync; returns its id.
async fn seeded_account(setup: &Setup, user: &User, count: usize, kind: &str) -> String {
    setup.servers.fill_inbox(&user.email, count, |i| {
        mail(
            &format!("{i}@seed.test"),
            "seed",
            "x@seed.test",
            &user.email,
            1,
        )
    });
    create_account(&setup.mailroom, &setup.servers, user, json!({"kind": kind})).await
}

/// Sync jobs of the IMAP connector that ended with `result` (`ok`, `failed`), from the
/// server's metrics.
async fn sync_jobs(setup: &Setup, result: &str) -> f64 {
    let scrape = crate::metrics::scrape(&setup.mailroom, Some(ADMIN_TOKEN)).await;
    let labels = [("connector", "imap"), ("result", result)];
    crate::metrics::value(&scrape, "mailroom_sync_jobs_total", &labels).unwrap_or(0.0)
}

/// The count of sync jobs once no job has ended for half a second.
async fn settled_jobs(setup: &Setup) -> f64 {
    let mut jobs = sync_jobs(setup, "ok").await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = sync_jobs(setup, "ok").await;
        if now == jobs {
            return jobs;
        }
        jobs = now;
    }
}

#[tokio::test]
async fn delivered_mail_shows_up_in_every_watched_folder_without_a_sync_request() {
    let setup = start().await;
    let mut imap = setup.imap("alice").await;
    imap.run("CREATE Work").await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let inbox = setup.folder_id(&account, "INBOX").await;
    let work = setup.folder_id(&account, "Work").await;

    let body = push_until(&setup, &account, watching).await;
    assert_eq!(body["push"]["method"], "IMAP NOTIFY", "{body}");
    let folders = body["push"]["folders"].as_array().unwrap();
    assert_eq!(
        folders[0],
        inbox.as_str(),
        "the inbox is watched first: {body}"
    );
    assert!(folders.contains(&json!(work)), "{body}");
    let synced_at = body["last_sync_at"].clone();

    setup
        .servers
        .deliver("alice", None, &letter("to the inbox"));
    let message = arrives(&setup, &account, "to the inbox").await;
    assert_eq!(message["folder_ids"], json!([inbox]));
    setup
        .servers
        .deliver("alice", Some("Work"), &letter("to work"));
    let message = arrives(&setup, &account, "to work").await;
    assert_eq!(message["folder_ids"], json!([work]));

    // A flag another client sets in the inbox shows too.
    imap.run("SELECT INBOX").await;
    imap.run("UID STORE 1:* +FLAGS (\\Flagged)").await;
    let deadline = Instant::now() + NEWS_WITHIN;
    while !arrives(&setup, &account, "to the inbox").await["flagged"]
        .as_bool()
        .unwrap()
    {
        assert!(Instant::now() < deadline, "the flag never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    imap.logout().await;

    // Jobs for a watch's news sync those folders only: the account's last full sync stays.
    let body = setup
        .mailroom
        .get(&format!("/v1/accounts/{account}"))
        .await
        .body;
    assert_eq!(body["last_sync_at"], synced_at, "{body}");
}

#[tokio::test]
async fn the_watch_comes_back_after_the_server_dropped_it() {
    let setup = start().await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    push_until(&setup, &account, watching).await;

    // Dovecot ends every session of the user; mail arrives while nobody watches.
    setup.servers.kick("alice");
    setup
        .servers
        .deliver("alice", None, &letter("while nobody watched"));
    arrives(&setup, &account, "while nobody watched").await;
    push_until(&setup, &account, watching).await;

    // The new watch hears the next delivery as the first one did.
    setup
        .servers
        .deliver("alice", None, &letter("after the watch came back"));
    arrives(&setup, &account, "after the watch came back").await;
}

#[tokio::test]
async fn a_first_sync_the_server_cut_off_goes_on_as_soon_as_the_watch_is_back() {
    const SEEDED: usize = 600;
    let mut setup = Setup::start_configured(Options::default(), |config| {
        config.push.enabled = true;
        // A failed job waits most of a minute, unless a watch finds the server back.
        config.sync.first_retry_secs = 60;
    })
    .await;
    let user = setup.servers.user("alice");
    let account = seeded_account(&setup, &user, SEEDED, "personal").await;

    // The server goes down once the first pages are in, and comes back.
    arrives_within(&setup, &account, "seed", Duration::from_secs(30)).await;
    setup.servers.stop_dovecot();
    let cut = setup
        .mailroom
        .get(&format!("/v1/accounts/{account}"))
        .await
        .body;
    assert_eq!(
        cut["state"], "syncing",
        "the first sync ended too soon to tell"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    setup.servers.start_dovecot_again();

    // The watch logs in again within seconds, and the first sync goes on with it: well
    // before the failed job's backoff would have ended.
    let done = setup
        .mailroom
        .wait_for_state(&account, "active", Duration::from_secs(25))
        .await;
    assert_eq!(done["push"]["state"], "watching", "{done}");
    assert_eq!(setup.mailroom.messages(&account, "").await.len(), SEEDED);
    let failed = sync_jobs(&setup, "failed").await;
    assert!(failed >= 1.0, "the outage cut no job off: {failed}");
}

#[tokio::test]
async fn a_deactivated_folder_is_no_longer_watched() {
    let setup = start().await;
    let mut imap = setup.imap("alice").await;
    imap.run("CREATE Work").await;
    imap.logout().await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let inbox = setup.folder_id(&account, "INBOX").await;
    let work = setup.folder_id(&account, "Work").await;
    push_until(&setup, &account, |push| {
        watching(push) && push["folders"].as_array().unwrap().contains(&json!(work))
    })
    .await;

    let changed = setup
        .mailroom
        .call(
            Method::PATCH,
            &format!("/v1/accounts/{account}"),
            Some(json!({"active_folders": [inbox]})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    push_until(&setup, &account, |push| {
        watching(push) && push["folders"] == json!([inbox])
    })
    .await;

    // News of the folder no longer watched starts no job; news of the inbox does. (The new
    // watch had its folders synced as it started: that job is over first.)
    let jobs = settled_jobs(&setup).await;
    setup
        .servers
        .deliver("alice", Some("Work"), &letter("unwatched"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sync_jobs(&setup, "ok").await,
        jobs,
        "a job ran for the unwatched folder"
    );
    setup.servers.deliver("alice", None, &letter("watched"));
    arrives(&setup, &account, "watched").await;
    assert!(sync_jobs(&setup, "ok").await > jobs);
}

#[tokio::test]
async fn an_account_waiting_to_be_reconnected_holds_no_connection() {
    let setup = start().await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    push_until(&setup, &account, watching).await;
    assert!(setup.servers.imap_sessions("alice") >= 1);

    // The password changes on the server, which ends the user's sessions: the watch cannot
    // log in again, and the account stops.
    setup.servers.set_password("alice", "pw-changed");
    setup.servers.kick("alice");
    let stopped = setup
        .mailroom
        .wait_for_state(&account, "auth_required", Duration::from_secs(30))
        .await;
    assert_eq!(stopped["push"]["state"], "off", "{stopped}");
    let failed = |log: &str| log.matches("auth failed").count();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failures = failed(&setup.servers.dovecot_log());
    assert_eq!(setup.servers.imap_sessions("alice"), 0);
    // No further login is tried while it waits.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(setup.servers.imap_sessions("alice"), 0);
    assert_eq!(failed(&setup.servers.dovecot_log()), failures);

    // Re-connected with the new password, it is watched again.
    let user = setup.servers.user("alice");
    let reconnected = setup
        .mailroom
        .post(
            &format!("/v1/accounts/{account}/reconnect"),
            json!({
                "connector": "imap",
                "email": user.email,
                "password": "pw-changed",
                "imap": {"host": "localhost", "port": setup.servers.imaps_port(), "encryption": "ssl"},
                "smtp": {"host": "localhost", "port": setup.servers.smtps_port(), "encryption": "ssl"},
            }),
        )
        .await;
    assert_eq!(reconnected.status, StatusCode::OK, "{}", reconnected.body);
    push_until(&setup, &account, watching).await;
    setup
        .servers
        .deliver("alice", None, &letter("after reconnecting"));
    arrives(&setup, &account, "after reconnecting").await;
}

#[tokio::test]
async fn idle_alone_watches_the_inbox_and_a_server_without_idle_is_polled() {
    let setup = Setup::start_configured(
        Options {
            notify: false,
            ..Options::default()
        },
        |config| config.push.enabled = true,
    )
    .await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let inbox = setup.folder_id(&account, "INBOX").await;
    let body = push_until(&setup, &account, watching).await;
    assert_eq!(body["push"]["method"], "IMAP IDLE", "{body}");
    assert_eq!(body["push"]["folders"], json!([inbox]), "{body}");
    setup.servers.deliver("alice", None, &letter("idled on"));
    arrives(&setup, &account, "idled on").await;

    let setup = Setup::start_configured(
        Options {
            idle: false,
            notify: false,
            ..Options::default()
        },
        |config| config.push.enabled = true,
    )
    .await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let body = push_until(&setup, &account, |push| push["state"] == "polling").await;
    let reason = body["push"]["reason"].as_str().unwrap();
    assert!(reason.contains("does not offer IMAP IDLE"), "{body}");
    assert_eq!(body["push"]["check_secs"], 3600, "{body}");
    // Nothing is watching: the sessions left are the kept one of the first sync.
    assert!(setup.servers.imap_sessions("alice") <= 1);
}

#[tokio::test]
async fn first_syncs_leave_a_job_slot_for_news() {
    // Four job slots: first syncs may take three.
    let setup = Setup::start_configured(
        Options {
            extra_users: 2,
            ..Options::default()
        },
        |config| {
            config.push.enabled = true;
            config.sandbox.max_concurrent_jobs = 4;
            config.sync.page_messages = 1;
        },
    )
    .await;
    let alice = setup.connect("alice", "1_month", json!({})).await;
    push_until(&setup, &alice, watching).await;
    // Four first syncs of a page a message, which would hold every slot for many seconds.
    let users = [
        setup.servers.user("bob"),
        setup.servers.user("carol"),
        setup.servers.extra_user(0),
        setup.servers.extra_user(1),
    ];
    let mut first = Vec::new();
    for user in &users {
        first.push(seeded_account(&setup, user, 2000, "shared").await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    setup
        .servers
        .deliver("alice", None, &letter("while others sync"));
    arrives_within(&setup, &alice, "while others sync", Duration::from_secs(3)).await;
    // The first syncs were still under way.
    let mut syncing = 0;
    for id in &first {
        let body = setup.mailroom.get(&format!("/v1/accounts/{id}")).await.body;
        syncing += usize::from(body["state"] == "syncing");
    }
    assert!(syncing >= 3, "the first syncs ended too soon to tell");
}
