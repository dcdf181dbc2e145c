//! Connectors loaded while the server runs: uploaded over HTTP, checked, replaced and
//! removed; and connectors built from source the way outside authors build them, syncing real
//! mailboxes.

use mailroom_tests::examples::{pop3_component, pop3_component_changed, pop3_python_component};
use mailroom_tests::imap::message;
use mailroom_tests::mailbox::{Setup, days_ago, rfc2822_days_ago};
use mailroom_tests::mailroom::{Mailroom, SERVICE_TOKEN, hostile_sync_connector};
use mailroom_tests::process::memory_kib;
use mailroom_tests::servers::Options;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn pop3_body(setup: &Setup, port: u16, encryption: &str, password: Option<&str>) -> Value {
    let user = setup.servers.user("alice");
    json!({
        "connector": "pop3",
        "email": user.email,
        "password": password.unwrap_or(&user.password),
        "pop3": {"host": "localhost", "port": port, "encryption": encryption},
    })
}

/// Connects a personal account with the connection `body`, syncing from a month ago;
/// returns its id.
async fn connect(mailroom: &Mailroom, mut body: Value) -> String {
    body["kind"] = json!("personal");
    body["sync_from"] = json!("1_month");
    let created = mailroom.post("/v1/accounts", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["id"].as_str().expect("an id").to_owned()
}

/// Seeds alice's INBOX: one message from before any start date, then `subjects`, newest last.
async fn seed(setup: &Setup, subjects: &[&str]) {
    let mut imap = setup.imap("alice").await;
    let old = message("old@client.test", "too old", &rfc2822_days_ago(90), "old");
    imap.append("INBOX", "", &days_ago(90), &old).await;
    for (i, subject) in subjects.iter().enumerate() {
        let days = (subjects.len() - i) as i64;
        let raw = message(
            &format!("seed{i}@client.test"),
            subject,
            &rfc2822_days_ago(days),
            "Hi.",
        );
        imap.append("INBOX", "", &days_ago(days), &raw).await;
    }
    imap.logout().await;
}

async fn subjects(mailroom: &Mailroom, account: &str) -> BTreeSet<String> {
    mailroom
        .messages(account, "")
        .await
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pop3_connector_built_from_source_is_uploaded_syncs_and_is_replaced_without_a_restart() {
    let component = pop3_component(None);
    // Pages of 1 KiB: the larger message travels in a body sink (0.4.0's `sinks.open`).
    let setup =
        Setup::start_configured(Options::default(), |config| config.sync.page_kib = 1).await;
    let mut imap = setup.imap("alice").await;
    // Older than the account's start, and first in the maildrop (which is in arrival
    // order): never synced.
    let old = message("old@client.test", "too old", &rfc2822_days_ago(90), "old");
    imap.append("INBOX", "", &days_ago(90), &old).await;
    for (i, days) in [(1, 2), (2, 1), (3, 0)] {
        let text = format!(
            "Hello over POP3.\r\n.hidden line\r\n{}",
            "long line\r\n".repeat(i * 200)
        );
        let raw = message(
            &format!("pop{i}@client.test"),
            &format!("pop message {i}"),
            &rfc2822_days_ago(days),
            &text,
        );
        imap.append("INBOX", "", &days_ago(days), &raw).await;
    }

    let uploaded = setup
        .mailroom
        .upload_connector(component.clone(), false)
        .await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    assert_eq!(uploaded.body["id"], "pop3");
    assert_eq!(uploaded.body["wit_version"], "0.4.0");
    assert_eq!(uploaded.body["version"], "1.0.0");
    assert_eq!(uploaded.body["servers"], json!(["pop3"]));
    assert_eq!(uploaded.body["builtin"], false);
    let listed = setup.mailroom.get("/v1/connectors/pop3").await;
    assert_eq!(listed.body, uploaded.body);
    let again = setup
        .mailroom
        .upload_connector(component.clone(), false)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.body["error"]["code"], "id_taken");

    // Tested over implicit TLS and over STLS; a wrong password is the server's refusal.
    let servers = &setup.servers;
    for (port, encryption) in [
        (servers.pop3s_port(), "ssl"),
        (servers.pop3_port(), "starttls"),
    ] {
        let tested = setup
            .mailroom
            .post(
                "/v1/accounts/test",
                pop3_body(&setup, port, encryption, None),
            )
            .await;
        assert_eq!(tested.body["ok"], true, "{encryption}: {}", tested.body);
        assert_eq!(
            tested.body["folders"][0]["name"], "Inbox",
            "{}",
            tested.body
        );
    }
    let refused = setup
        .mailroom
        .post(
            "/v1/accounts/test",
            pop3_body(&setup, servers.pop3s_port(), "ssl", Some("wrong")),
        )
        .await;
    assert_eq!(refused.body["ok"], false, "{}", refused.body);
    assert_eq!(
        refused.body["error"]["code"], "auth_failed",
        "{}",
        refused.body
    );

    let body = pop3_body(&setup, servers.pop3s_port(), "ssl", None);
    let account = connect(&setup.mailroom, body).await;
    let synced = setup.mailroom.sync(&account).await;
    assert_eq!(
        subjects(&setup.mailroom, &account).await,
        set(&["pop message 1", "pop message 2", "pop message 3"]),
        "{synced}"
    );
    let raw = setup
        .mailroom
        .get(&format!(
            "/v1/messages/{}",
            setup.mailroom.messages(&account, "").await[0]["id"]
                .as_str()
                .expect("an id")
        ))
        .await;
    assert!(
        raw.body["text"]
            .as_str()
            .unwrap_or_default()
            .contains("\n.hidden line"),
        "dot-stuffing is undone: {}",
        raw.body
    );

    // New mail, and mail deleted on the server; then version 1.1.0 takes over.
    let new = message(
        "pop4@client.test",
        "pop message 4",
        &rfc2822_days_ago(0),
        "new",
    );
    imap.append("INBOX", "", &days_ago(0), &new).await;
    imap.run("SELECT INBOX").await;
    let first = imap.uid_search("HEADER Message-ID pop1@client.test").await;
    imap.run(&format!("UID STORE {} +FLAGS (\\Deleted)", first[0]))
        .await;
    imap.run("EXPUNGE").await;
    imap.logout().await;
    // A version without the `pop3` server the account uses cannot take over.
    let dropping = pop3_component_changed(
        Some("2.0.0"),
        &[(
            "servers: vec![\"pop3\".into()]",
            "servers: vec![\"pop\".into()]",
        )],
    );
    let refused = setup.mailroom.upload_connector(dropping, true).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "in_use", "{}", refused.body);
    let replaced = setup
        .mailroom
        .upload_connector(pop3_component(Some("1.1.0")), true)
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["version"], "1.1.0");
    assert_ne!(replaced.body["digest"], uploaded.body["digest"]);
    setup.mailroom.sync(&account).await;
    assert_eq!(
        subjects(&setup.mailroom, &account).await,
        set(&["pop message 2", "pop message 3", "pop message 4"])
    );

    // The upload survives a restart, compiled code and all.
    let Setup { servers, mailroom } = setup;
    let mailroom = mailroom.restart().await;
    let after = mailroom.get("/v1/connectors/pop3").await;
    assert_eq!(after.body["version"], "1.1.0", "{}", after.body);
    let account_view = mailroom.sync(&account).await;
    assert_eq!(account_view["state"], "active", "{account_view}");

    // Removing it: refused while the account uses it, then forced.
    let in_use = mailroom
        .call(Method::DELETE, "/v1/connectors/pop3", None)
        .await;
    assert_eq!(in_use.status, StatusCode::CONFLICT, "{}", in_use.body);
    assert_eq!(in_use.body["error"]["code"], "in_use");
    let forced = mailroom
        .call(Method::DELETE, "/v1/connectors/pop3?force=true", None)
        .await;
    assert_eq!(forced.status, StatusCode::NO_CONTENT, "{}", forced.body);
    let gone = mailroom.get("/v1/connectors/pop3").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let disabled = mailroom.get(&format!("/v1/accounts/{account}")).await;
    assert_eq!(disabled.body["state"], "disabled", "{}", disabled.body);
    assert!(
        disabled.body["state_reason"]
            .as_str()
            .is_some_and(|r| r.contains("pop3")),
        "{}",
        disabled.body
    );
    // Its mail stays.
    assert_eq!(mailroom.messages(&account, "").await.len(), 3);
    mailroom.stop().await;
    drop(servers);
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_are_refused_with_a_reason_each() {
    let mailroom = Mailroom::start(|_| {}).await;
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"MZ not wasm".to_vec(), "not_a_component"),
        (core_module, "not_a_component"),
        (b"\0asm\x0d\0\x01\0garbage".to_vec(), "compile_failed"),
    ];
    // A component that imports what connectors may not use, one that is no connector at
    // all, and the POP3 example with an id that breaks the pattern.
    let mut http = wasm_encoder::Component::new();
    let mut types = wasm_encoder::ComponentTypeSection::new();
    types.instance(&wasm_encoder::InstanceType::new());
    http.section(&types);
    let mut imports = wasm_encoder::ComponentImportSection::new();
    imports.import(
        "wasi:http/outgoing-handler@0.2.0",
        wasm_encoder::ComponentTypeRef::Instance(0),
    );
    http.section(&imports);
    let bad_id = pop3_component_changed(None, &[("id: \"pop3\".into()", "id: \"POP 3\".into()")]);
    let cases = cases.into_iter().chain([
        (http.finish(), "forbidden_import"),
        (wasm_encoder::Component::new().finish(), "unsupported_world"),
        (bad_id, "invalid_describe"),
    ]);
    for (bytes, code) in cases {
        let answer = mailroom.upload_connector(bytes, false).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{code}: {}",
            answer.body
        );
        assert_eq!(answer.body["error"]["code"], code, "{}", answer.body);
    }
    // The built-in IMAP connector, uploaded, can take neither a new place nor its own.
    let (_, imap) = mailroom::runtime::builtin::CONNECTORS[0];
    for replace in [false, true] {
        let answer = mailroom.upload_connector(imap.to_vec(), replace).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
        assert_eq!(answer.body["error"]["code"], "builtin", "{}", answer.body);
    }
    let removed = mailroom
        .call(Method::DELETE, "/v1/connectors/imap", None)
        .await;
    assert_eq!(removed.status, StatusCode::CONFLICT, "{}", removed.body);
    assert_eq!(removed.body["error"]["code"], "builtin");
    let unknown = mailroom
        .call(Method::DELETE, "/v1/connectors/nothing", None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    let json_body = mailroom.post("/v1/connectors", json!({})).await;
    assert_eq!(
        json_body.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        json_body.body
    );
    // A member cannot load code into the server.
    let member = mailroom.create_member("Mia", "mia@example.test").await;
    let answer = mailroom
        .http()
        .post(mailroom.url("/v1/connectors"))
        .bearer_auth(SERVICE_TOKEN)
        .header("x-mailroom-user", &member)
        .header("content-type", "application/wasm")
        .body(imap.to_vec())
        .send()
        .await
        .expect("a response");
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    mailroom.stop().await;

    let small = Mailroom::start(|config| config.connectors.max_upload_mib = 1).await;
    let answer = small.upload_connector(vec![0; (1 << 20) + 1], false).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["error"]["code"], "too_large", "{}", answer.body);
    small.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_written_in_python_is_uploaded_and_syncs() {
    let built = std::time::Instant::now();
    let component = pop3_python_component();
    let build_time = built.elapsed();
    // One message a page: the first sync goes back over several pages.
    let setup = Setup::start_configured(Options::default(), |config| {
        config.sync.page_messages = 1;
    })
    .await;
    seed(&setup, &["python 1", "python 2", "python 3"]).await;
    let started = std::time::Instant::now();
    let uploaded = setup
        .mailroom
        .upload_connector(component.clone(), false)
        .await;
    let upload_time = started.elapsed();
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    assert_eq!(uploaded.body["id"], "pop3-py");
    assert_eq!(uploaded.body["wit_version"], "0.4.0");
    eprintln!(
        "python connector: {} bytes, built in {build_time:?}, uploaded and compiled in {upload_time:?}",
        component.len()
    );
    let mut body = pop3_body(&setup, setup.servers.pop3_port(), "starttls", None);
    body["connector"] = json!("pop3-py");
    let tested = setup.mailroom.post("/v1/accounts/test", body.clone()).await;
    assert_eq!(tested.body["ok"], true, "{}", tested.body);
    let account = connect(&setup.mailroom, body).await;
    let synced = setup.mailroom.sync(&account).await;
    assert_eq!(
        subjects(&setup.mailroom, &account).await,
        set(&["python 1", "python 2", "python 3"]),
        "{synced}"
    );
    let sent = setup
        .mailroom
        .post(
            &format!("/v1/accounts/{account}/send"),
            json!({"to": [{"email": "bob@example.test"}], "subject": "s", "text": "t"}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    setup.mailroom.sync(&account).await;
    let outbox = setup
        .mailroom
        .get(&format!(
            "/v1/outbox/{}",
            sent.body["outbox_id"].as_str().expect("an id")
        ))
        .await;
    assert_eq!(outbox.body["state"], "failed", "{}", outbox.body);
    assert!(
        outbox.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("SMTP connector")),
        "{}",
        outbox.body
    );
}

/// Uploads the hostile syncing test connector and connects an account of it in `mode`.
async fn hostile_account(mailroom: &Mailroom, mode: &str) -> String {
    let component = std::fs::read(hostile_sync_connector()).expect("the test connector");
    let uploaded = mailroom.upload_connector(component, false).await;
    assert!(
        uploaded.status == StatusCode::CREATED || uploaded.body["error"]["code"] == "id_taken",
        "{}",
        uploaded.body
    );
    let body = json!({
        "connector": "hostile-sync", "email": "mallory@example.test", "password": "pw",
        "imap": {"host": "127.0.0.1", "port": 1, "encryption": "ssl"},
        "smtp": {"host": "127.0.0.1", "port": 1, "encryption": "ssl"},
        "settings": {"mode": mode},
    });
    connect(mailroom, body).await
}

/// Waits until `account` is in `state`; returns it.
async fn wait_for_state(mailroom: &Mailroom, account: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let view = mailroom.get(&format!("/v1/accounts/{account}")).await.body;
        if view["state"] == state {
            return view;
        }
        assert!(Instant::now() < deadline, "never {state}: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_in_an_uploaded_connector_leaves_another_accounts_sync_untouched() {
    let setup = Setup::start_configured(Options::default(), |config| {
        config.sandbox.cpu_ms = 3_000;
    })
    .await;
    seed(&setup, &["healthy 1", "healthy 2"]).await;
    // The spinning job starts at once and burns its budget while alice's account syncs.
    let spinning = hostile_account(&setup.mailroom, "spin").await;
    let healthy = setup.connect("alice", "1_month", json!({})).await;
    assert_eq!(
        subjects(&setup.mailroom, &healthy).await,
        set(&["healthy 1", "healthy 2"])
    );
    let failed = wait_for_state(&setup.mailroom, &spinning, "error").await;
    assert!(
        failed["state_reason"]
            .as_str()
            .is_some_and(|r| r.contains("CPU budget")),
        "{failed}"
    );
    let view = setup
        .mailroom
        .get(&format!("/v1/accounts/{healthy}"))
        .await
        .body;
    assert_eq!(view["state"], "active", "{view}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_log_lines_from_an_uploaded_connector_is_capped() {
    let mailroom = Mailroom::start(|config| config.sync.interval_secs = 3600).await;
    let account = hostile_account(&mailroom, "log-flood").await;
    // Some 900 MB of log lines and output; the host keeps 64 KiB of each, and the page after
    // them commits.
    let synced = mailroom.sync(&account).await;
    assert_eq!(synced["state"], "active", "{synced}");
    let peak_kib = memory_kib(std::process::id(), "VmHWM");
    assert!(peak_kib < 1 << 20, "peak RSS {peak_kib} KiB");
    mailroom.stop().await;
}
