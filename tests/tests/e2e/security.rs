//! Attacks on the host, each tried as a connector, a member or a mail sender would: what a
//! connector can make the host hold or store, who reads a timeline, how mail is served, how
//! tokens end, how connection tests are bounded.

use mailroom::{Bootstrap, Server};
use mailroom_tests::mailbox::{Setup, days_ago, rfc2822_days_ago};
use mailroom_tests::mailroom::{
    ADMIN_TOKEN, Api, Mailroom, SERVICE_TOKEN, hostile_sync_connector, test_config,
};
use mailroom_tests::process::memory_kib;
use mailroom_tests::servers::MailServers;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A server with the hostile syncing connector uploaded, as a third party's would be.
async fn hostile_mailroom(configure: impl FnOnce(&mut mailroom::Config)) -> Mailroom {
    let mailroom = Mailroom::start(|config| {
        config.sync.interval_secs = 3600;
        config.sync.page_messages = 50;
        configure(config);
    })
    .await;
    let component = std::fs::read(hostile_sync_connector()).expect("the test connector");
    let uploaded = mailroom.upload_connector(component, false).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    mailroom
}

/// The connection body of a hostile-sync account in `mode`; its servers are never reached
/// unless the mode says so.
fn hostile_body(mode: &str, imap_port: u16, smtp_port: u16) -> Value {
    json!({
        "connector": "hostile-sync",
        "email": "alice@example.test",
        "password": "secret",
        "allow_insecure_certificate": true,
        "imap": {"host": "127.0.0.1", "port": imap_port, "encryption": "ssl"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "encryption": "ssl"},
        "settings": {"mode": mode},
    })
}

/// Connects a hostile-sync account in `mode` and waits until its job has failed; returns
/// the account.
async fn failed_sync(mailroom: &Mailroom, mode: &str) -> Value {
    let mut body = hostile_body(mode, 1, 1);
    body["kind"] = json!("personal");
    body["sync_from"] = json!("1_month");
    let created = mailroom.post("/v1/accounts", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let account = mailroom.get(&format!("/v1/accounts/{id}")).await.body;
        if account["state"] == "error" {
            return account;
        }
        assert!(Instant::now() < deadline, "the job never failed: {account}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn reason(account: &Value) -> &str {
    account["state_reason"].as_str().unwrap_or_default()
}

/// The peak resident memory of this process (the server runs in it), in bytes.
fn peak_rss() -> u64 {
    memory_kib(std::process::id(), "VmHWM") * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_large_sinks_cannot_make_the_host_hold_gigabytes() {
    let mailroom = hostile_mailroom(|_| {}).await;
    let account = failed_sync(&mailroom, "sinks").await;
    assert!(reason(&account).contains("body sinks"), "{account}");
    let peak = peak_rss();
    println!(
        "peak RSS of the test process with the sink attack: {} MiB",
        peak >> 20
    );
    assert!(peak < 1 << 30, "peak RSS {} MiB", peak >> 20);
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_past_the_limits_asked_for_is_refused() {
    let mailroom = hostile_mailroom(|_| {}).await;
    for (mode, said) in [
        ("many-messages", "1000 messages when at most 50"),
        ("fat-page", "bytes when 4194304"),
        ("huge-state", "folder state of 50331648 bytes"),
    ] {
        let account = failed_sync(&mailroom, mode).await;
        assert!(reason(&account).contains(said), "{mode}: {account}");
        let id = account["id"].as_str().unwrap();
        let messages = mailroom.get(&format!("/v1/accounts/{id}/messages")).await;
        assert_eq!(
            messages.body["items"],
            json!([]),
            "{mode}: nothing is stored"
        );
    }
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_of_a_hundred_thousand_folders_or_huge_names_is_refused() {
    let mailroom = hostile_mailroom(|_| {}).await;
    for mode in ["many-folders", "long-folder-name"] {
        let answer = mailroom
            .post("/v1/accounts/test", hostile_body(mode, 1, 1))
            .await;
        assert_eq!(answer.body["ok"], false, "{mode}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], "denied", "{}", answer.body);
    }
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_that_spins_in_a_sync_reports_its_cpu_budget() {
    let mailroom = hostile_mailroom(|config| config.sandbox.cpu_ms = 300).await;
    let account = failed_sync(&mailroom, "spin").await;
    assert!(reason(&account).contains("CPU budget"), "{account}");
    // The operator sees it too.
    let scraped = crate::metrics::scrape(&mailroom, Some(SERVICE_TOKEN)).await;
    let stopped = crate::metrics::value(
        &scraped,
        "mailroom_connector_failures_total",
        &[("connector", "hostile-sync"), ("kind", "cpu_budget")],
    );
    assert!(stopped >= Some(1.0), "{stopped:?}");
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_known_calls_is_charged_to_the_cpu_budget() {
    // Each call costs the host about 20 ms and the guest almost nothing. Counted as one
    // 5 ms tick per call, a budget of 2 s would take 400 calls, some 8 s, beyond the job's
    // 5 s; charged at its real cost, it ends the job in about 2 s.
    let mailroom = hostile_mailroom(|config| {
        config.sandbox.cpu_ms = 2_000;
        config.sandbox.job_timeout_ms = 5_000;
    })
    .await;
    let account = failed_sync(&mailroom, "known-flood").await;
    assert!(reason(&account).contains("CPU budget"), "{account}");
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_smuggled_behind_a_control_byte_stops_the_hosts_login() {
    let servers = MailServers::start();
    let mailroom = hostile_mailroom(|_| {}).await;
    for mode in ["cr-smuggle", "tab-smuggle"] {
        let answer = mailroom
            .post(
                "/v1/accounts/test",
                hostile_body(mode, servers.imaps_port(), servers.smtps_port()),
            )
            .await;
        assert_eq!(
            answer.body["error"]["code"], "denied",
            "{mode}: {}",
            answer.body
        );
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("control character")),
            "{mode}: {}",
            answer.body
        );
    }
    mailroom.stop().await;
}

/// A message whose parts would run as pages on the API's origin if served as they are.
fn active_parts_message() -> Vec<u8> {
    format!(
        "From: mallory@evil.test\r\nTo: alice@example.test\r\nSubject: Active parts\r\n\
Message-ID: <active@evil.test>\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/html\r\n\r\n<p>See <img src=\"https://tracker.evil.test/p.gif\"> \
<img src=\"/v1/accounts\"></p>\r\n\
--b\r\nContent-Type: image/svg+xml\r\n\r\n<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>\r\n\
--b\r\nContent-Type: text/html\r\nContent-Disposition: attachment\r\n\r\n<script>alert(2)</script>\r\n\
--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"p.png\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n",
        rfc2822_days_ago(1)
    )
    .into_bytes()
}

#[tokio::test]
async fn attachments_are_never_served_as_pages_and_remote_images_stay_off() {
    let setup = Setup::start().await;
    let mut imap = setup.imap("alice").await;
    imap.append("INBOX", "", &days_ago(1), &active_parts_message())
        .await;
    imap.logout().await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let id = setup.mailroom.messages(&account, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = setup.mailroom.get(&format!("/v1/messages/{id}")).await.body;
    let html = view["html"].as_str().unwrap();
    assert!(!html.contains("tracker.evil.test"), "{html}");
    assert!(!html.contains("/v1/accounts"), "{html}");
    assert_eq!(view["remote_content"], true);
    let allowed = setup
        .mailroom
        .get(&format!("/v1/messages/{id}?remote=allow"))
        .await
        .body;
    assert!(
        allowed["html"]
            .as_str()
            .unwrap()
            .contains("tracker.evil.test")
    );

    let attachments = view["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 3, "{view}");
    for attachment in attachments {
        let path = format!(
            "/v1/messages/{id}/attachments/{}",
            attachment["id"].as_str().unwrap()
        );
        let response = setup
            .mailroom
            .http()
            .get(setup.mailroom.url(&path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let raster = attachment["content_type"] == "image/png";
        let (kind, disposition) = (header("content-type"), header("content-disposition"));
        if raster {
            assert_eq!(kind, "image/png");
            assert!(disposition.starts_with("inline"), "{disposition}");
        } else {
            assert_eq!(kind, "application/octet-stream", "{attachment}");
            assert!(disposition.starts_with("attachment"), "{disposition}");
        }
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(
            header("content-security-policy"),
            "sandbox; default-src 'none'"
        );
    }
    let raw = setup
        .mailroom
        .http()
        .get(setup.mailroom.url(&format!("/v1/messages/{id}/raw")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw.headers()["content-security-policy"],
        "sandbox; default-src 'none'"
    );
}

/// A message from `from` to `to`, dated a day ago.
fn mail(from: &str, to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\
Date: {}\r\n\r\nAbout {subject}.\r\n",
        rfc2822_days_ago(1)
    )
    .into_bytes()
}

#[tokio::test]
async fn a_member_cannot_read_others_mail_through_contacts_their_own_account_creates() {
    let setup = Setup::start().await;
    let mailroom = &setup.mailroom;
    // Alice (the admin here) corresponds privately with a client.
    let mut imap = setup.imap("alice").await;
    imap.append(
        "INBOX",
        "",
        &days_ago(1),
        &mail("client@target.test", "alice@example.test", "private-deal"),
    )
    .await;
    imap.logout().await;
    setup
        .connect("alice", "1_month", json!({"create_contact": true}))
        .await;
    let contact = mailroom
        .get("/v1/records/contacts?created_by=mailroom")
        .await
        .body["items"][0]["id"]
        .as_str()
        .expect("alice's account created the client's contact")
        .to_owned();

    // Mo, a member, connects a mailbox of their own holding one message "from" themself to
    // the client, so that their account files mail under the same created contact.
    let mo = mailroom.create_member("Mo", "mo@crm.test").await;
    let bob = setup.servers.user("bob");
    let mut imap = setup.imap("bob").await;
    imap.append(
        "INBOX",
        "",
        &days_ago(1),
        &mail(&bob.email, "client@target.test", "bait"),
    )
    .await;
    imap.logout().await;
    let as_mo = |method: Method, path: String, body: Option<Value>| {
        let mo = mo.clone();
        async move {
            mailroom
                .call_as(SERVICE_TOKEN, Some(&mo), method, &path, body)
                .await
        }
    };
    let created = as_mo(
        Method::POST,
        "/v1/accounts".into(),
        Some(json!({
            "connector": "imap", "email": bob.email, "password": bob.password,
            "imap": {"host": "localhost", "port": setup.servers.imaps_port(), "encryption": "ssl"},
            "smtp": {"host": "localhost", "port": setup.servers.smtps_port(), "encryption": "ssl"},
            "kind": "personal", "sync_from": "1_month", "create_contact": true,
        })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let mo_account = created.body["id"].as_str().unwrap().to_owned();
    let requested = as_mo(
        Method::POST,
        format!("/v1/accounts/{mo_account}/sync"),
        None,
    )
    .await;
    assert_eq!(requested.status, StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(60);
    while as_mo(Method::GET, format!("/v1/accounts/{mo_account}"), None)
        .await
        .body["last_sync_at"]
        .is_null()
    {
        assert!(Instant::now() < deadline, "mo's account never synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Mo sees the contact (their mail is filed under it) but only their own message.
    let timeline = as_mo(
        Method::GET,
        format!("/v1/records/contacts/{contact}/messages"),
        None,
    )
    .await;
    assert_eq!(timeline.status, StatusCode::OK, "{}", timeline.body);
    let subjects: Vec<&str> = timeline.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["bait"]);
    // The admin's bare service view, the CRM's, sees both.
    let crm = mailroom
        .call_as(
            SERVICE_TOKEN,
            None,
            Method::GET,
            &format!("/v1/records/contacts/{contact}/messages"),
            None,
        )
        .await;
    assert_eq!(
        crm.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        crm.body
    );
    // Alice's message is 404 to Mo through the record.
    let alice_message = crm.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"] == "private-deal")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        format!("/v1/records/contacts/{contact}/messages/{alice_message}"),
        format!("/v1/records/contacts/{contact}/messages/{alice_message}/attachments/att_0"),
    ] {
        assert_eq!(
            as_mo(Method::GET, path.clone(), None).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Mo heard neither of the contact Alice's account created nor of her message's filing.
    let events = as_mo(Method::GET, "/v1/events?after=0&limit=500".into(), None).await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.body);
    let leaked = events.body["items"].as_array().unwrap().iter().any(|e| {
        e["type"] == "contact.created" || e["data"]["message_id"] == alice_message.as_str()
    });
    assert!(!leaked, "{}", events.body);

    // A record the CRM restricts is 404 to everyone else, admins included.
    let put = mailroom
        .call(
            Method::PUT,
            "/v1/records/deals/secret-deal",
            Some(
                json!({"name": "Secret", "contact_ids": [], "company_ids": [], "visible_to": [mo]}),
            ),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);
    assert_eq!(put.body["visible_to"], json!([mo]));
    assert_eq!(
        mailroom.get("/v1/records/deals/secret-deal").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        mailroom
            .get("/v1/records/deals/secret-deal/messages")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let listed = mailroom.get("/v1/records/deals").await;
    assert_eq!(listed.body["items"], json!([]), "{}", listed.body);
    assert_eq!(
        as_mo(Method::GET, "/v1/records/deals/secret-deal".into(), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_restricted_record_is_not_named_on_the_messages_filed_under_it() {
    let setup = Setup::start().await;
    let mailroom = &setup.mailroom;
    let mo = mailroom.create_member("Mo", "mo@crm.test").await;
    for (path, body) in [
        (
            "/v1/records/contacts/client",
            json!({"name": "Client", "emails": ["client@target.test"], "visible_to": [mo]}),
        ),
        (
            "/v1/records/companies/target",
            json!({"name": "Target", "domains": ["target.test"]}),
        ),
    ] {
        let put = mailroom.call(Method::PUT, path, Some(body)).await;
        assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);
    }
    let mut imap = setup.imap("alice").await;
    imap.append(
        "INBOX",
        "",
        &days_ago(1),
        &mail("client@target.test", "alice@example.test", "terms"),
    )
    .await;
    imap.logout().await;
    let account = setup.connect("alice", "1_month", json!({})).await;

    // The admin reads the message but learns only of the company.
    let listed = mailroom.messages(&account, "").await;
    assert_eq!(listed.len(), 1);
    let company = json!([{"type": "companies", "id": "target"}]);
    assert_eq!(listed[0]["records"], company, "{}", listed[0]);
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let one = mailroom.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(one.body["records"], company, "{}", one.body);
    let patched = mailroom
        .call(
            Method::PATCH,
            &format!("/v1/messages/{id}"),
            Some(json!({"flagged": true})),
        )
        .await;
    assert_eq!(patched.body["records"], company, "{}", patched.body);
    let timeline = mailroom.get("/v1/records/companies/target/messages").await;
    assert_eq!(
        timeline.body["items"][0]["records"], company,
        "{}",
        timeline.body
    );

    // The CRM's back end sees both.
    let crm = mailroom
        .call_as(
            SERVICE_TOKEN,
            None,
            Method::GET,
            "/v1/records/companies/target/messages",
            None,
        )
        .await;
    assert_eq!(crm.status, StatusCode::OK, "{}", crm.body);
    let mut kinds: Vec<&str> = crm.body["items"][0]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["companies", "contacts"], "{}", crm.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_members_stuck_accounts_cannot_take_every_sync_slot() {
    // Two job slots for the whole server; a job may spin for a minute.
    let mailroom = hostile_mailroom(|config| {
        config.sandbox.max_concurrent_jobs = 2;
        config.sandbox.max_jobs_per_owner = 1;
        config.sandbox.cpu_ms = 60_000;
        config.sandbox.job_timeout_ms = 60_000;
    })
    .await;
    let mo = mailroom.create_member("Mo", "mo@crm.test").await;
    let mut body = hostile_body("spin", 1, 1);
    body["kind"] = json!("personal");
    body["sync_from"] = json!("1_month");
    for _ in 0..3 {
        let created = mailroom
            .call_as(
                SERVICE_TOKEN,
                Some(&mo),
                Method::POST,
                "/v1/accounts",
                Some(body.clone()),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }
    let mut shared = hostile_body("empty", 1, 1);
    shared["kind"] = json!("shared");
    shared["sync_from"] = json!("1_month");
    let created = mailroom.post("/v1/accounts", shared).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let account = mailroom.get(&format!("/v1/accounts/{id}")).await.body;
        if !account["last_sync_at"].is_null() {
            assert_eq!(account["state"], "active", "{account}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the shared inbox waited behind a member's accounts: {account}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_user_is_refused_everywhere_and_their_tokens_end() {
    let mailroom = Mailroom::start(|_| {}).await;
    let mo = mailroom.create_member("Mo", "mo@crm.test").await;
    let token = mailroom
        .call_as(
            SERVICE_TOKEN,
            Some(&mo),
            Method::POST,
            "/v1/me/tokens",
            Some(json!({"name": "laptop"})),
        )
        .await;
    let secret = token.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        mailroom
            .call_as(&secret, None, Method::GET, "/v1/me", None)
            .await
            .status,
        StatusCode::OK
    );
    let tokens = mailroom.get(&format!("/v1/users/{mo}/tokens")).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    let listed = &tokens.body["items"][0];
    assert_eq!(listed["name"], "laptop");
    assert!(listed["last_used_at"].is_string(), "{listed}");
    assert!(!tokens.body.to_string().contains(&secret));

    let disabled = mailroom
        .call(
            Method::PATCH,
            &format!("/v1/users/{mo}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.body["disabled"], true, "{}", disabled.body);
    for (token, act_as) in [(secret.as_str(), None), (SERVICE_TOKEN, Some(mo.as_str()))] {
        let answer = mailroom
            .call_as(token, act_as, Method::GET, "/v1/me", None)
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    }
    assert_eq!(
        mailroom.get(&format!("/v1/users/{mo}/tokens")).await.body["items"],
        json!([])
    );
    // Enabled again: the service may act as them; the revoked token stays revoked.
    mailroom
        .call(
            Method::PATCH,
            &format!("/v1/users/{mo}"),
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(
        mailroom
            .call_as(SERVICE_TOKEN, Some(&mo), Method::GET, "/v1/me", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        mailroom
            .call_as(&secret, None, Method::GET, "/v1/me", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_service_token_replaces_the_old_one() {
    let data = tempfile::tempdir().unwrap();
    let config = test_config(data.path());
    let start = |service: &str| {
        let setup = Bootstrap {
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            service_token: Some(service.to_owned()),
            secret_key: None,
        };
        let config = config.clone();
        async move { Server::start(&config, &setup).await.unwrap() }
    };
    let server = start("mr_old_service_token").await;
    server.stop().await;
    let server = start("mr_new_service_token").await;
    let api = Api::new(&format!("http://{}", server.addr()));
    let users = |token: &'static str| {
        let api = api.clone();
        async move {
            api.call_as(token, None, Method::GET, "/v1/records/contacts", None)
                .await
                .status
        }
    };
    assert_eq!(users("mr_new_service_token").await, StatusCode::OK);
    assert_eq!(
        users("mr_old_service_token").await,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
    // The data directory and the database are the server's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.path()), 0o700);
    if config.store.backend == mailroom::config::StoreBackend::Redb {
        let database = std::fs::read_dir(data.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "redb"))
            .expect("a database file");
        assert_eq!(mode(&database), 0o600);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_speaks_cannot_hold_the_tests_or_the_shutdown() {
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let mailroom = Mailroom::start(|config| {
        config.api.connection_test_timeout_secs = 3;
        config.api.max_concurrent_tests_per_caller = 2;
        config.net.io_timeout_ms = 60_000;
    })
    .await;
    let body = json!({
        "connector": "imap", "email": "a@example.test", "password": "x",
        "imap": {"host": "127.0.0.1", "port": port, "encryption": "none"},
        "smtp": {"host": "127.0.0.1", "port": port, "encryption": "none"},
    });
    let started = Instant::now();
    let tests: Vec<_> = (0..3)
        .map(|_| {
            let api = (*mailroom).clone();
            let body = body.clone();
            tokio::spawn(async move { api.post("/v1/accounts/test", body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for test in tests {
        answers.push(test.await.unwrap());
    }
    let limited: Vec<&_> = answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(limited.len(), 1, "{answers:?}");
    assert!(limited[0].headers.contains_key("retry-after"));
    for answer in answers.iter().filter(|a| a.status == StatusCode::OK) {
        assert_eq!(answer.body["error"]["code"], "timeout", "{}", answer.body);
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    mailroom.stop().await;

    // Tests hanging on the silent server (with a long deadline) do not hold up a shutdown.
    let mailroom = Mailroom::start(|config| {
        config.api.connection_test_timeout_secs = 120;
        config.net.io_timeout_ms = 120_000;
    })
    .await;
    for _ in 0..2 {
        let api = (*mailroom).clone();
        let body = body.clone();
        tokio::spawn(async move { api.post("/v1/accounts/test", body).await });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = Instant::now();
    mailroom.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "{:?}",
        stopping.elapsed()
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_accounts_are_limited_per_owner_and_the_event_cursor_cannot_overflow() {
    let mailroom = hostile_mailroom(|config| config.api.max_accounts_per_owner = 1).await;
    let create = || {
        let mut body = hostile_body("none", 1, 1);
        body["kind"] = json!("personal");
        body["sync_from"] = json!("now");
        mailroom.post("/v1/accounts", body)
    };
    assert_eq!(create().await.status, StatusCode::CREATED);
    let refused = create().await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "account_limit");
    let events = mailroom
        .get(&format!("/v1/events?after={}", u64::MAX))
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.body);
    assert_eq!(events.body["items"], json!([]));
    mailroom.stop().await;
}
