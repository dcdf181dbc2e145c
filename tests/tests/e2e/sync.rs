//! Synchronisation against a real Dovecot: what arrives on the first sync, and how changes
//! made by another IMAP client show up in Mailroom after the next one.

use mailroom_tests::imap::message;
use mailroom_tests::mailbox::{Setup, days_ago, rfc2822_days_ago};
use mailroom_tests::servers::Options;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Seeds alice's INBOX with one message per age (in days); subjects are `age N`.
async fn seed_ages(setup: &Setup, ages: &[i64]) {
    let mut imap = setup.imap("alice").await;
    for age in ages {
        let raw = message(
            &format!("age-{age}@client.test"),
            &format!("age {age}"),
            &rfc2822_days_ago(*age),
            &format!("Sent {age} days ago."),
        );
        imap.append("INBOX", "", &days_ago(*age), &raw).await;
    }
    imap.logout().await;
}

fn subjects_of(ages: &[i64]) -> BTreeSet<String> {
    ages.iter().map(|a| format!("age {a}")).collect()
}

#[tokio::test]
async fn first_sync_takes_exactly_the_chosen_window() {
    let setup = Setup::start().await;
    let ages = [0, 2, 20, 27, 40, 75, 120, 170, 200, 300];
    seed_ages(&setup, &ages).await;

    let one = setup.connect("alice", "1_month", json!({})).await;
    assert_eq!(setup.subjects(&one, "").await, subjects_of(&[0, 2, 20, 27]));
    let three = setup.connect("alice", "3_months", json!({})).await;
    assert_eq!(
        setup.subjects(&three, "").await,
        subjects_of(&[0, 2, 20, 27, 40, 75])
    );
    let six = setup.connect("alice", "6_months", json!({})).await;
    assert_eq!(
        setup.subjects(&six, "").await,
        subjects_of(&[0, 2, 20, 27, 40, 75, 120, 170])
    );
    let now = setup.connect("alice", "now", json!({})).await;
    assert!(setup.subjects(&now, "").await.is_empty());

    // Newest first, by arrival; every account ends up `active`.
    let listed = setup.mailroom.messages(&six, "").await;
    let order: Vec<&str> = listed
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(order[..3], ["age 0", "age 2", "age 20"]);
    for account in [&one, &three, &six, &now] {
        let body = setup
            .mailroom
            .get(&format!("/v1/accounts/{account}"))
            .await
            .body;
        assert_eq!(body["state"], "active", "{body}");
    }

    // Mail arriving later reaches every account, `now` included.
    seed_ages(&setup, &[400]).await;
    for account in [&one, &now] {
        setup.mailroom.sync(account).await;
        assert!(setup.subjects(account, "").await.contains("age 400"));
    }
}

/// What another mail client does between two syncs, and what Mailroom shows afterwards.
async fn changes_by_another_client_appear(options: Options) {
    let condstore = options.condstore;
    let setup = Setup::start_with(options).await;
    let capabilities = setup.imap("alice").await.run("CAPABILITY").await;
    assert_eq!(
        capabilities.contains("CONDSTORE"),
        condstore,
        "{capabilities}"
    );
    assert_eq!(
        capabilities.contains("QRESYNC"),
        condstore,
        "{capabilities}"
    );
    seed_ages(&setup, &[1, 2, 3, 4, 5, 6]).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let archive = setup.folder_id(&account, "Archive").await;
    let inbox = setup.folder_id(&account, "INBOX").await;
    let before = setup.mailroom.messages(&account, "").await;
    assert_eq!(before.len(), 6);
    let id_of = |subject: &str| -> String {
        before
            .iter()
            .find(|m| m["subject"] == subject)
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no message {subject}"))
    };
    let moved_id = id_of("age 3");
    let events_before = setup.mailroom.get("/v1/events?limit=500").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut imap = setup.imap("alice").await;
    imap.run("SELECT INBOX").await;
    let uid = |subject: &str| format!("HEADER Subject \"{subject}\"");
    let seen = imap.uid_search(&uid("age 1")).await;
    imap.run(&format!("UID STORE {} +FLAGS (\\Seen)", seen[0]))
        .await;
    let flagged = imap.uid_search(&uid("age 2")).await;
    imap.run(&format!(
        "UID STORE {} +FLAGS (\\Flagged \\Seen)",
        flagged[0]
    ))
    .await;
    let moved = imap.uid_search(&uid("age 3")).await;
    imap.run(&format!("UID MOVE {} Archive", moved[0])).await;
    let gone = imap.uid_search(&uid("age 4")).await;
    imap.run(&format!("UID STORE {} +FLAGS (\\Deleted)", gone[0]))
        .await;
    imap.run("EXPUNGE").await;
    let raw = message(
        "fresh@client.test",
        "fresh",
        &rfc2822_days_ago(0),
        "New mail.",
    );
    imap.append("INBOX", "", &days_ago(0), &raw).await;
    imap.logout().await;

    // The other client's session, and the one Mailroom kept from its last sync, have ended
    // (and been logged) before the sync starts; the sync's own is ended after it, so that
    // Dovecot logs what it served.
    setup.servers.kick("alice");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log_before = setup.servers.dovecot_log().len();
    setup.mailroom.sync(&account).await;
    setup.servers.kick("alice");
    // Only the new message was downloaded: the moved one was recognised by its Message-ID
    // and size before its body was fetched.
    assert_eq!(bodies_fetched_since(&setup, log_before).await, 1);
    let after = setup.mailroom.messages(&account, "").await;
    let by_subject = |subject: &str| after.iter().find(|m| m["subject"] == subject).cloned();
    assert_eq!(after.len(), 6, "one expunged, one new: {after:#?}");
    assert!(by_subject("age 4").is_none());
    assert!(by_subject("fresh").is_some());
    let one = by_subject("age 1").unwrap();
    assert_eq!(
        (one["seen"].as_bool(), one["flagged"].as_bool()),
        (Some(true), Some(false))
    );
    let two = by_subject("age 2").unwrap();
    assert_eq!(
        (two["seen"].as_bool(), two["flagged"].as_bool()),
        (Some(true), Some(true))
    );
    // The move kept the message's id and changed its folder.
    let three = by_subject("age 3").unwrap();
    assert_eq!(three["id"].as_str(), Some(moved_id.as_str()));
    assert_eq!(three["folder_ids"], json!([archive]));
    assert_eq!(
        setup
            .subjects(&account, &format!("&folder={archive}"))
            .await,
        subjects_of(&[3])
    );
    assert_eq!(setup.subjects(&account, "&unread=true").await.len(), 4);
    assert_eq!(setup.subjects(&account, "&q=FRESH").await.len(), 1);

    // The folder counts follow.
    let folders = setup
        .mailroom
        .get(&format!("/v1/accounts/{account}/folders"))
        .await
        .body;
    let counts = |id: &str| {
        let f = folders["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap();
        (f["unread"].as_u64().unwrap(), f["total"].as_u64().unwrap())
    };
    assert_eq!(counts(&inbox), (3, 5));
    assert_eq!(counts(&archive), (1, 1));

    // Events tell the same story: one created, one deleted, none created for the move.
    let events = setup
        .mailroom
        .get(&format!("/v1/events?after={events_before}&limit=500"))
        .await
        .body;
    let of_kind = |kind: &str| -> Vec<String> {
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == kind)
            .map(|e| {
                e["data"]["message_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(of_kind("message.created").len(), 1, "{events:#}");
    assert_eq!(of_kind("message.deleted"), vec![id_of("age 4")]);
    assert!(of_kind("message.updated").contains(&moved_id));
}

/// Message bodies Dovecot served to the sync job(s) whose sessions ended after `offset` in
/// its log (each session logs `body_count=` when it ends).
async fn bodies_fetched_since(setup: &Setup, offset: usize) -> u64 {
    let sessions = |log: &str| -> Vec<u64> {
        log[offset..]
            .lines()
            .filter(|l| l.contains("imap(alice@example.test)") && l.contains("Disconnected"))
            .filter_map(|l| l.split("body_count=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect()
    };
    let log = dovecot_log_once(setup, |log| !sessions(log).is_empty()).await;
    let ended = sessions(&log);
    assert!(
        !ended.is_empty(),
        "no sync session ended:\n{}",
        &log[offset..]
    );
    ended.iter().sum()
}

/// Dovecot's log once `done` holds for it, or as it is after 5 s: Dovecot writes its log
/// from a process of its own, a moment after the fact.
async fn dovecot_log_once(setup: &Setup, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log = setup.servers.dovecot_log();
        if done(&log) || std::time::Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn changes_by_another_client_appear_with_qresync() {
    changes_by_another_client_appear(Options::default()).await;
}

#[tokio::test]
async fn changes_by_another_client_appear_without_condstore() {
    changes_by_another_client_appear(Options {
        condstore: false,
        ..Options::default()
    })
    .await;
}

#[tokio::test]
async fn trash_and_spam_start_from_the_first_sync_and_then_follow() {
    let setup = Setup::start().await;
    let mut imap = setup.imap("alice").await;
    for folder in ["Trash", "Junk", "INBOX"] {
        let raw = message(
            &format!("old-{folder}@client.test"),
            &format!("old in {folder}"),
            &rfc2822_days_ago(3),
            "Before the account was connected.",
        );
        imap.append(folder, "", &days_ago(3), &raw).await;
    }
    // Every folder active, trash and spam included.
    let user = setup.servers.user("alice");
    let test = setup
        .mailroom
        .post(
            "/v1/accounts/test",
            json!({"connector": "imap", "email": user.email, "password": user.password,
                   "imap": {"host": "localhost", "port": setup.servers.imaps_port(), "encryption": "ssl"},
                   "smtp": {"host": "localhost", "port": setup.servers.smtps_port(), "encryption": "ssl"}}),
        )
        .await;
    let all: Vec<Value> = test.body["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].clone())
        .collect();
    let account = setup
        .connect("alice", "1_month", json!({"active_folders": all}))
        .await;
    assert_eq!(
        setup.subjects(&account, "").await,
        BTreeSet::from(["old in INBOX".to_owned()])
    );

    for folder in ["Trash", "Junk"] {
        let raw = message(
            &format!("new-{folder}@client.test"),
            &format!("new in {folder}"),
            &rfc2822_days_ago(0),
            "After.",
        );
        imap.append(folder, "", &days_ago(0), &raw).await;
    }
    imap.logout().await;
    setup.mailroom.sync(&account).await;
    assert_eq!(
        setup.subjects(&account, "").await,
        BTreeSet::from(["old in INBOX", "new in Trash", "new in Junk"].map(str::to_owned))
    );

    // A folder deactivated later leaves the mailbox view.
    let trash = setup.folder_id(&account, "Trash").await;
    let active: Vec<&Value> = all.iter().filter(|id| **id != trash).collect();
    let patched = setup
        .mailroom
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/accounts/{account}"),
            Some(json!({"active_folders": active})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    setup.mailroom.sync(&account).await;
    assert_eq!(
        setup.subjects(&account, "").await,
        BTreeSet::from(["old in INBOX", "new in Junk"].map(str::to_owned))
    );
}

#[tokio::test]
async fn a_uidvalidity_reset_keeps_ids_and_adds_no_duplicates() {
    let setup = Setup::start().await;
    let mut imap = setup.imap("alice").await;
    imap.run("CREATE Projects").await;
    let raws: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            message(
                &format!("p{i}@client.test"),
                &format!("project {i}"),
                &rfc2822_days_ago(i),
                "Plans.",
            )
        })
        .collect();
    for (i, raw) in raws.iter().enumerate() {
        imap.append("Projects", "", &days_ago(i as i64), raw).await;
    }
    let account = setup.connect("alice", "1_month", json!({})).await;
    let before: BTreeSet<(String, String)> = setup
        .mailroom
        .messages(&account, "")
        .await
        .iter()
        .map(|m| {
            (
                m["subject"].as_str().unwrap().to_owned(),
                m["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(before.len(), 5);

    // Recreating the mailbox gives it a new UIDVALIDITY; two of its messages come back.
    imap.run("DELETE Projects").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    imap.run("CREATE Projects").await;
    for (i, raw) in raws.iter().enumerate().take(2) {
        imap.append("Projects", "", &days_ago(i as i64), raw).await;
    }
    imap.logout().await;
    setup.mailroom.sync(&account).await;
    let after: BTreeSet<(String, String)> = setup
        .mailroom
        .messages(&account, "")
        .await
        .iter()
        .map(|m| {
            (
                m["subject"].as_str().unwrap().to_owned(),
                m["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let kept: BTreeSet<(String, String)> = before
        .iter()
        .filter(|(s, _)| s == "project 0" || s == "project 1")
        .cloned()
        .collect();
    assert_eq!(after, kept);
}

/// Logins into alice's mailbox Dovecot logged.
fn logins(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("imap-login") && l.contains("Login: user=<alice@example.test>"))
        .count()
}

#[tokio::test]
async fn a_sync_finds_its_connection_open_and_replaces_one_the_server_closed() {
    let setup = Setup::start().await;
    seed_ages(&setup, &[1, 2]).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = logins(&setup.servers.dovecot_log());

    // Syncs with nothing to do log in no more: the first sync's session is still open.
    for _ in 0..3 {
        let synced = setup.mailroom.sync(&account).await;
        assert_eq!(synced["state"], "active", "{synced}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(logins(&setup.servers.dovecot_log()), before);

    // The server ends that session while it idles, and mail arrives meanwhile (through
    // another client, which logs in once).
    setup.servers.kick("alice");
    seed_ages(&setup, &[0]).await;
    let synced = setup.mailroom.sync(&account).await;
    assert_eq!(synced["state"], "active", "{synced}");
    assert_eq!(synced["state_reason"], Value::Null, "{synced}");
    assert_eq!(setup.subjects(&account, "").await, subjects_of(&[0, 1, 2]));
    let log = dovecot_log_once(&setup, |log| logins(log) >= before + 2).await;
    assert_eq!(
        logins(&log),
        before + 2,
        "the other client's login and one new session of Mailroom's:\n{log}"
    );

    // The new session is kept in turn.
    setup.mailroom.sync(&account).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(logins(&setup.servers.dovecot_log()), before + 2);

    // A deleted account's session ends with it.
    let offset = setup.servers.dovecot_log().len();
    let deleted = setup
        .mailroom
        .call(Method::DELETE, &format!("/v1/accounts/{account}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let closed = |log: &str| {
        log[offset..]
            .lines()
            .any(|l| l.contains("imap(alice@example.test)") && l.contains("Disconnected"))
    };
    let log = dovecot_log_once(&setup, closed).await;
    assert!(
        closed(&log),
        "the session was not closed:\n{}",
        &log[offset..]
    );
}

#[tokio::test]
async fn a_refused_login_stops_the_account_until_it_is_reconnected() {
    let setup = Setup::start().await;
    seed_ages(&setup, &[1, 2]).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let ids: BTreeSet<String> = setup
        .mailroom
        .messages(&account, "")
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let cursor = setup.mailroom.get("/v1/events?limit=500").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();

    // The server ends the sessions of a user whose password changed.
    setup.servers.set_password("alice", "pw-changed");
    setup.servers.kick("alice");
    let logins_before = failed_logins(&setup.servers.dovecot_log());
    let stopped = setup
        .mailroom
        .sync_until_state(
            &account,
            "auth_required",
            std::time::Duration::from_secs(30),
        )
        .await;
    assert!(
        stopped["state_reason"]
            .as_str()
            .unwrap()
            .contains("refused the login"),
        "{stopped}"
    );
    assert_eq!(
        failed_logins(&setup.servers.dovecot_log()),
        logins_before + 1
    );

    // No further attempts, whether asked for or due.
    let refused = setup
        .mailroom
        .post(&format!("/v1/accounts/{account}/sync"), Value::Null)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["error"]["code"], "auth_required");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        failed_logins(&setup.servers.dovecot_log()),
        logins_before + 1
    );

    // Re-connecting with the new password resumes where the account was.
    let user = setup.servers.user("alice");
    let reconnected = setup
        .mailroom
        .post(
            &format!("/v1/accounts/{account}/reconnect"),
            json!({"connector": "imap", "email": user.email, "password": "pw-changed",
                   "imap": {"host": "localhost", "port": setup.servers.imaps_port(), "encryption": "ssl"},
                   "smtp": {"host": "localhost", "port": setup.servers.smtps_port(), "encryption": "ssl"}}),
        )
        .await;
    assert_eq!(reconnected.status, StatusCode::OK, "{}", reconnected.body);
    let synced = setup.mailroom.sync(&account).await;
    assert_eq!(synced["state"], "active", "{synced}");
    let again: BTreeSet<String> = setup
        .mailroom
        .messages(&account, "")
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(again, ids);
    let events = setup
        .mailroom
        .get(&format!("/v1/events?after={cursor}&limit=500"))
        .await
        .body;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        !kinds.contains(&"message.created"),
        "nothing was fetched again: {kinds:?}"
    );
    // The stop and the return are events, each with its state and reason.
    let changes: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "account.state_changed")
        .map(|e| &e["data"])
        .collect();
    let stop = changes
        .iter()
        .find(|c| c["state"] == "auth_required")
        .expect("an event for the stop");
    assert_eq!(stop["reason"], stopped["state_reason"]);
    assert_eq!(
        stop["next_retry_at"],
        Value::Null,
        "no retry until re-connected"
    );
    let back = changes.last().unwrap();
    assert_eq!(
        (&back["state"], &back["reason"]),
        (&json!("active"), &Value::Null)
    );
}

/// Failed logins Dovecot logged.
fn failed_logins(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("imap-login") && l.contains("auth failed"))
        .count()
}
