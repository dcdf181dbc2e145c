//! Two-way sync and sending against the real Dovecot and SMTP server: what a user does in
//! Mailroom shows on the server (seen by a plain IMAP client), and mail sent through the API
//! reaches its recipients once, signed, and filed in Sent.

use base64::Engine;
use mailroom_tests::imap::{ImapClient, message};
use mailroom_tests::mailbox::{Setup, days_ago, rfc2822_days_ago};
use mailroom_tests::mailroom::SERVICE_TOKEN;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Seeds alice's INBOX with messages `m<i>@client.test`, subjects `message <i>`.
async fn seed(setup: &Setup, count: usize) {
    let mut imap = setup.imap("alice").await;
    for i in 0..count {
        let raw = message(
            &format!("m{i}@client.test"),
            &format!("message {i}"),
            &rfc2822_days_ago(1),
            "Hello.",
        );
        imap.append("INBOX", "", &days_ago(1), &raw).await;
    }
    imap.logout().await;
}

/// The Mailroom id of the account's message with this subject.
async fn id_of(setup: &Setup, account: &str, subject: &str) -> String {
    let listed = setup.mailroom.messages(account, "").await;
    listed
        .iter()
        .find(|m| m["subject"] == subject)
        .unwrap_or_else(|| panic!("no message `{subject}` in {listed:?}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The flags the server holds for the message with this Message-ID in `mailbox`; none
/// when the mailbox does not hold it.
async fn server_flags(imap: &mut ImapClient, mailbox: &str, message_id: &str) -> Option<String> {
    imap.run(&format!("SELECT \"{mailbox}\"")).await;
    let uids = imap
        .uid_search(&format!("HEADER Message-ID \"{message_id}\""))
        .await;
    let uid = uids.first()?;
    let text = imap.run(&format!("UID FETCH {uid} (FLAGS)")).await;
    let line = text.lines().find(|l| l.contains("FLAGS"))?;
    Some(line.to_owned())
}

/// `PATCH /v1/messages/{id}` as the admin.
async fn patch_message(setup: &Setup, id: &str, body: Value) -> (StatusCode, Value) {
    call(
        setup,
        Method::PATCH,
        &format!("/v1/messages/{id}"),
        Some(body),
    )
    .await
}

async fn call(
    setup: &Setup,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let answer = setup.mailroom.call(method, path, body).await;
    (answer.status, answer.body)
}

#[tokio::test]
async fn flags_moves_and_deletes_reach_the_server() {
    let setup = Setup::start().await;
    seed(&setup, 3).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let first = id_of(&setup, &account, "message 0").await;
    let second = id_of(&setup, &account, "message 1").await;
    let mut imap = setup.imap("alice").await;

    // Read and starred: at once in Mailroom, on the server after the account's job.
    let (status, body) =
        patch_message(&setup, &first, json!({"seen": true, "flagged": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["seen"].as_bool(), body["flagged"].as_bool()),
        (Some(true), Some(true))
    );
    setup.mailroom.sync(&account).await;
    let flags = server_flags(&mut imap, "INBOX", "m0@client.test")
        .await
        .unwrap();
    assert!(
        flags.contains("\\Seen") && flags.contains("\\Flagged"),
        "{flags}"
    );

    // Unread again; the sync that follows does not bring the old state back.
    let (status, body) = patch_message(&setup, &first, json!({"seen": false})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    setup.mailroom.sync(&account).await;
    let flags = server_flags(&mut imap, "INBOX", "m0@client.test")
        .await
        .unwrap();
    assert!(
        !flags.contains("\\Seen") && flags.contains("\\Flagged"),
        "{flags}"
    );
    let (_, body) = call(&setup, Method::GET, &format!("/v1/messages/{first}"), None).await;
    assert_eq!(
        (body["seen"].as_bool(), body["flagged"].as_bool()),
        (Some(false), Some(true))
    );

    // Moved to Archive: same id, in Archive on the server and in Mailroom.
    let archive = setup.folder_id(&account, "Archive").await;
    let (status, body) = call(
        &setup,
        Method::POST,
        &format!("/v1/messages/{first}/move"),
        Some(json!({"folder_id": archive})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["folder_ids"], json!([archive]));
    setup.mailroom.sync(&account).await;
    assert_eq!(
        server_flags(&mut imap, "INBOX", "m0@client.test").await,
        None
    );
    assert!(
        server_flags(&mut imap, "Archive", "m0@client.test")
            .await
            .is_some()
    );
    let (status, body) = call(&setup, Method::GET, &format!("/v1/messages/{first}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["folder_ids"], json!([archive]));
    assert_eq!(body["flagged"], true);

    // Deleted: to the trash first, then for good.
    let trash = setup.folder_id(&account, "Trash").await;
    let (status, _) = call(
        &setup,
        Method::DELETE,
        &format!("/v1/messages/{second}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = call(&setup, Method::GET, &format!("/v1/messages/{second}"), None).await;
    assert_eq!(body["folder_ids"], json!([trash]));
    setup.mailroom.sync(&account).await;
    assert_eq!(
        server_flags(&mut imap, "INBOX", "m1@client.test").await,
        None
    );
    assert!(
        server_flags(&mut imap, "Trash", "m1@client.test")
            .await
            .is_some()
    );
    let (status, _) = call(
        &setup,
        Method::DELETE,
        &format!("/v1/messages/{second}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&setup, Method::GET, &format!("/v1/messages/{second}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    setup.mailroom.sync(&account).await;
    assert_eq!(
        server_flags(&mut imap, "Trash", "m1@client.test").await,
        None
    );
    let (status, _) = call(
        &setup,
        Method::DELETE,
        &format!("/v1/messages/{second}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The untouched message is where it was, and nothing came twice.
    let subjects = setup.subjects(&account, "").await;
    assert_eq!(
        subjects,
        ["message 0", "message 2"]
            .map(str::to_owned)
            .into_iter()
            .collect()
    );
    imap.logout().await;
}

#[tokio::test]
async fn a_change_made_while_the_server_is_down_is_pushed_after_a_restart() {
    let setup = Setup::start().await;
    seed(&setup, 1).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let first = id_of(&setup, &account, "message 0").await;
    let Setup {
        mut servers,
        mailroom,
    } = setup;

    servers.stop_dovecot();
    let answer = mailroom
        .call(
            Method::PATCH,
            &format!("/v1/messages/{first}"),
            Some(json!({"flagged": true})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // Jobs run against the dead server and fail until the account shows the error; the
    // change waits, across a restart of Mailroom too.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let account = mailroom.get(&format!("/v1/accounts/{account}")).await.body;
        if account["state"] == "error" {
            break;
        }
        assert!(Instant::now() < deadline, "no job failed: {account}");
        let requested = mailroom
            .post(
                &format!(
                    "/v1/accounts/{account}/sync",
                    account = account["id"].as_str().unwrap()
                ),
                Value::Null,
            )
            .await;
        assert_eq!(requested.status, StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mailroom = mailroom.restart().await;
    let body = mailroom.get(&format!("/v1/messages/{first}")).await.body;
    assert_eq!(body["flagged"], true);

    servers.start_dovecot_again();
    let synced = mailroom.sync(&account).await;
    assert_eq!(synced["state"], "active", "{synced}");
    let user = servers.user("alice");
    let mut imap = ImapClient::login(servers.imap_port(), &user.email, &user.password).await;
    let flags = server_flags(&mut imap, "INBOX", "m0@client.test")
        .await
        .unwrap();
    assert!(flags.contains("\\Flagged"), "{flags}");
    imap.logout().await;
}

#[tokio::test]
async fn a_change_follows_a_message_another_client_moved() {
    let setup = Setup::start().await;
    seed(&setup, 1).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let first = id_of(&setup, &account, "message 0").await;
    let (status, _) = patch_message(&setup, &first, json!({"flagged": true})).await;
    assert_eq!(status, StatusCode::OK);
    // Before Mailroom pushes it, another client moves the message: its UID changes.
    let mut imap = setup.imap("alice").await;
    imap.run("SELECT INBOX").await;
    imap.run("MOVE 1 Archive").await;

    setup.mailroom.sync(&account).await;
    setup.mailroom.sync(&account).await;
    let flags = server_flags(&mut imap, "Archive", "m0@client.test")
        .await
        .unwrap();
    assert!(flags.contains("\\Flagged"), "{flags}");
    let archive = setup.folder_id(&account, "Archive").await;
    let (status, body) = call(&setup, Method::GET, &format!("/v1/messages/{first}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["folder_ids"], json!([archive]));
    assert_eq!(body["flagged"], true);
    imap.logout().await;
}

#[tokio::test]
async fn a_change_to_a_message_gone_from_the_server_is_dropped_not_retried() {
    let setup = Setup::start().await;
    seed(&setup, 2).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let first = id_of(&setup, &account, "message 0").await;
    let cursor = setup
        .mailroom
        .get("/v1/events?after=0&limit=500")
        .await
        .body["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_owned();

    // Another client expunges it, and Mailroom's change is made before its next sync.
    let mut imap = setup.imap("alice").await;
    imap.run("SELECT INBOX").await;
    let uids = imap
        .uid_search("HEADER Message-ID \"m0@client.test\"")
        .await;
    imap.run(&format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", uids[0]))
        .await;
    imap.run("EXPUNGE").await;
    imap.logout().await;
    let (status, _) = patch_message(&setup, &first, json!({"flagged": true})).await;
    assert_eq!(status, StatusCode::OK);

    for _ in 0..3 {
        setup.mailroom.sync(&account).await;
    }
    let (status, _) = call(&setup, Method::GET, &format!("/v1/messages/{first}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let events = setup
        .mailroom
        .get(&format!("/v1/events?after={cursor}&limit=500"))
        .await;
    let failed: Vec<&Value> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message.change_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{}", events.body);
    assert_eq!(failed[0]["data"]["message_id"], first.as_str());
    assert_eq!(setup.subjects(&account, "").await.len(), 1);
}

/// Waits until the outbox entry leaves `queued`/`sending`; returns it.
async fn settled(setup: &Setup, account: &str, outbox_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        setup.mailroom.sync(account).await;
        let entry = setup.mailroom.get(&format!("/v1/outbox/{outbox_id}")).await;
        assert_eq!(entry.status, StatusCode::OK, "{}", entry.body);
        if entry.body["state"] == "sent" || entry.body["state"] == "failed" {
            return entry.body;
        }
        assert!(
            Instant::now() < deadline,
            "not sent within 60 s: {}",
            entry.body
        );
    }
}

/// Syncs `account` until a message with this RFC Message-ID is in it; returns it.
async fn arrival(setup: &Setup, account: &str, message_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        setup.mailroom.sync(account).await;
        let found = setup
            .mailroom
            .messages(account, "")
            .await
            .into_iter()
            .find(|m| m["message_id"] == message_id);
        if let Some(found) = found {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "<{message_id}> did not arrive within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn send_with_key(
    setup: &Setup,
    account: &str,
    key: &str,
    request: &Value,
) -> mailroom_tests::mailroom::Answer {
    let url = setup.mailroom.url(&format!("/v1/accounts/{account}/send"));
    mailroom_tests::mailroom::answer(
        setup
            .mailroom
            .http()
            .post(url)
            .bearer_auth(mailroom_tests::mailroom::ADMIN_TOKEN)
            .header("Idempotency-Key", key)
            .json(request),
    )
    .await
}

#[tokio::test]
async fn alice_sends_to_bob_signed_with_an_attachment_and_a_hidden_copy_once() {
    let setup = Setup::start().await;
    let (status, body) = call(
        &setup,
        Method::PATCH,
        "/v1/me",
        Some(json!({"signature": "<p>Alice Adams<br>Sales</p>"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Sent mail is filed like received mail.
    let contact = setup
        .mailroom
        .call(
            Method::PUT,
            "/v1/records/contacts/bob",
            Some(json!({"name": "Bob", "emails": ["bob@example.test"]})),
        )
        .await;
    assert_eq!(contact.status, StatusCode::CREATED, "{}", contact.body);
    let alice = setup
        .connect("alice", "now", json!({"display_name": "Alice Adams"}))
        .await;
    let bob = setup.connect("bob", "now", json!({})).await;

    let pdf: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let request = json!({
        "to": [{"email": "bob@example.test", "name": "Bob"}],
        "bcc": [{"email": "carol@example.test"}],
        "subject": "Quote for Q3",
        "text": "Hi Bob,\nthe quote is attached.",
        "html": "<html><body><p>Hi Bob,</p><p>the quote is attached.</p></body></html>",
        "attachments": [{"filename": "quote.pdf", "content_type": "application/pdf",
            "content_base64": base64::engine::general_purpose::STANDARD.encode(&pdf)}],
    });
    let queued = send_with_key(&setup, &alice, "quote-1", &request).await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    let again = send_with_key(&setup, &alice, "quote-1", &request).await;
    assert_eq!(again.body, queued.body);
    let outbox_id = queued.body["outbox_id"].as_str().unwrap().to_owned();
    let message_id = queued.body["message_id"].as_str().unwrap().to_owned();

    let entry = settled(&setup, &alice, &outbox_id).await;
    assert_eq!(entry["state"], "sent", "{entry}");
    let accepted: Vec<(&str, bool)> = entry["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["email"].as_str().unwrap(),
                r["accepted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        accepted,
        [("bob@example.test", true), ("carol@example.test", true)]
    );

    // Bob's copy: the attachment byte for byte, the signature, no trace of the Bcc.
    let received = arrival(&setup, &bob, &message_id).await;
    let received_id = received["id"].as_str().unwrap().to_owned();
    let (_, full) = call(
        &setup,
        Method::GET,
        &format!("/v1/messages/{received_id}"),
        None,
    )
    .await;
    assert_eq!(full["from"]["email"], "alice@example.test");
    assert_eq!(full["from"]["name"], "Alice Adams");
    let text = full["text"].as_str().unwrap().replace("\r\n", "\n");
    assert!(
        text.contains("attached.\n\n-- \nAlice Adams\nSales"),
        "{full}"
    );
    assert!(
        full["html"].as_str().unwrap().contains("Alice Adams"),
        "{full}"
    );
    let attachment = full["attachments"][0]["id"].as_str().unwrap();
    let bytes = setup
        .mailroom
        .http()
        .get(setup.mailroom.url(&format!(
            "/v1/messages/{received_id}/attachments/{attachment}"
        )))
        .bearer_auth(mailroom_tests::mailroom::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), pdf.as_slice());
    let raw = setup
        .mailroom
        .http()
        .get(
            setup
                .mailroom
                .url(&format!("/v1/messages/{received_id}/raw")),
        )
        .bearer_auth(mailroom_tests::mailroom::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!raw.to_ascii_lowercase().contains("carol"), "{raw}");
    assert_eq!(received["bcc"], json!([]));

    // Sent once, to each: bob and carol hold exactly one copy; alice's Sent keeps the Bcc.
    let mut bob_imap = setup.imap("bob").await;
    let ids = bob_imap.message_ids("INBOX").await;
    assert_eq!(ids.iter().filter(|id| **id == message_id).count(), 1);
    let mut carol_imap = setup.imap("carol").await;
    let ids = carol_imap.message_ids("INBOX").await;
    assert_eq!(ids.iter().filter(|id| **id == message_id).count(), 1);
    carol_imap.logout().await;
    let sent_folder = setup.folder_id(&alice, "Sent").await;
    let copy = setup
        .mailroom
        .messages(&alice, &format!("&folder={sent_folder}"))
        .await;
    assert_eq!(copy.len(), 1, "{copy:?}");
    assert_eq!(copy[0]["message_id"], message_id.as_str());
    assert_eq!(copy[0]["bcc"][0]["email"], "carol@example.test");
    assert_eq!(
        copy[0]["records"],
        json!([{"type": "contacts", "id": "bob"}])
    );
    let mut alice_imap = setup.imap("alice").await;
    alice_imap.run("SELECT Sent").await;
    let text = alice_imap.run("UID FETCH 1:* (BODY.PEEK[HEADER])").await;
    assert!(text.contains("Bcc: carol@example.test"), "{text}");

    // Bob answers without a subject: "Re: " once, threaded with the original on both
    // sides, and the original is \Answered.
    let reply = setup
        .mailroom
        .post(
            &format!("/v1/accounts/{bob}/send"),
            json!({"to": [{"email": "alice@example.test"}], "in_reply_to": received_id,
                   "text": "Thanks!", "signature": false}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let reply_outbox = reply.body["outbox_id"].as_str().unwrap().to_owned();
    let reply_id = reply.body["message_id"].as_str().unwrap().to_owned();
    assert_eq!(settled(&setup, &bob, &reply_outbox).await["state"], "sent");
    let at_alice = arrival(&setup, &alice, &reply_id).await;
    assert_eq!(at_alice["subject"], "Re: Quote for Q3");
    assert_eq!(at_alice["thread_id"], copy[0]["thread_id"]);
    setup.mailroom.sync(&bob).await;
    let (_, original) = call(
        &setup,
        Method::GET,
        &format!("/v1/messages/{received_id}"),
        None,
    )
    .await;
    assert_eq!(original["answered"], true, "{original}");
    let bob_sent = setup.folder_id(&bob, "Sent").await;
    let bob_reply = setup
        .mailroom
        .messages(&bob, &format!("&folder={bob_sent}"))
        .await;
    assert_eq!(bob_reply[0]["thread_id"], original["thread_id"]);
    let flags = server_flags(&mut bob_imap, "INBOX", &message_id)
        .await
        .unwrap();
    assert!(flags.contains("\\Answered"), "{flags}");
    bob_imap.logout().await;
    alice_imap.logout().await;
}

#[tokio::test]
async fn a_refused_send_is_retried_or_failed_by_its_reply_and_holds_nothing_else_up() {
    let setup = Setup::start().await;
    seed(&setup, 1).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let message = id_of(&setup, &account, "message 0").await;
    let send = |to: &str, subject: &str| json!({"to": [{"email": to}], "subject": subject, "text": "Hello."});
    let path = format!("/v1/accounts/{account}/send");
    let later = setup
        .mailroom
        .post(&path, send("bob@example.test", "[tempfail] later"))
        .await;
    assert_eq!(later.status, StatusCode::ACCEPTED, "{}", later.body);
    let never = setup
        .mailroom
        .post(&path, send("nobody@example.test", "never"))
        .await;
    assert_eq!(never.status, StatusCode::ACCEPTED, "{}", never.body);
    // Queued after both sends, and not held up by the one that must wait.
    let (status, _) = patch_message(&setup, &message, json!({"flagged": true})).await;
    assert_eq!(status, StatusCode::OK);
    setup.mailroom.sync(&account).await;

    let entry = |id: &Value| format!("/v1/outbox/{}", id.as_str().unwrap());
    let waiting = setup
        .mailroom
        .get(&entry(&later.body["outbox_id"]))
        .await
        .body;
    assert_eq!(waiting["state"], "queued", "{waiting}");
    assert!(
        waiting["error"].as_str().unwrap().starts_with("451"),
        "{waiting}"
    );
    let failed = setup
        .mailroom
        .get(&entry(&never.body["outbox_id"]))
        .await
        .body;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().starts_with('5'),
        "{failed}"
    );
    let mut imap = setup.imap("alice").await;
    let flags = server_flags(&mut imap, "INBOX", "m0@client.test")
        .await
        .unwrap();
    assert!(flags.contains("\\Flagged"), "{flags}");
    imap.logout().await;
    // Tried again at the next job, still waiting.
    setup.mailroom.sync(&account).await;
    let waiting = setup
        .mailroom
        .get(&entry(&later.body["outbox_id"]))
        .await
        .body;
    assert_eq!(waiting["state"], "queued", "{waiting}");
}

#[tokio::test]
async fn bad_requests_to_send_and_change_are_refused_clearly() {
    let setup = Setup::start().await;
    seed(&setup, 1).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let path = format!("/v1/accounts/{account}/send");
    let text = json!("Hello");
    let cases = [
        (
            json!({"to": [], "subject": "s", "text": text}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "to",
        ),
        (
            json!({"subject": "s", "text": text}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "to",
        ),
        (
            json!({"to": [{"email": "not an address"}], "subject": "s", "text": text}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "to",
        ),
        (
            json!({"to": [{"email": "bob@example.test\r\nRCPT TO:<x@y>"}], "subject": "s", "text": text}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "to",
        ),
        (
            json!({"to": [{"email": "bob@example.test"}], "text": text}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "subject",
        ),
        (
            json!({"to": [{"email": "bob@example.test"}], "subject": "s"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "text",
        ),
        (
            json!({"to": [{"email": "bob@example.test"}], "subject": "s", "text": text, "in_reply_to": "msg_nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "in_reply_to",
        ),
        (
            json!({"to": [{"email": "bob@example.test"}], "subject": "s", "text": text,
            "attachments": [{"filename": "a", "content_base64": "%%%"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "attachments",
        ),
        (
            json!({"to": [{"email": "bob@example.test"}], "subject": "s", "text": text,
            "attachments": [{"filename": "big.bin", "content_base64":
                base64::engine::general_purpose::STANDARD.encode(vec![0u8; 10 * 1024 * 1024 + 1])}]}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "attachments",
        ),
    ];
    for (body, status, field) in cases {
        let answer = setup.mailroom.post(&path, body.clone()).await;
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(answer.body["error"]["field"], field, "{}", answer.body);
    }

    let message = id_of(&setup, &account, "message 0").await;
    for (method, path, body) in [
        (Method::PATCH, format!("/v1/messages/{message}"), json!({})),
        (
            Method::PATCH,
            format!("/v1/messages/{message}"),
            json!({"seen": "yes"}),
        ),
        (
            Method::POST,
            format!("/v1/messages/{message}/move"),
            json!({"folder_id": "nope"}),
        ),
    ] {
        let answer = setup.mailroom.call(method, &path, Some(body)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            answer.body
        );
    }

    // A member who may not see the account: 404 on its message, its sends and replies.
    let member_id = setup.mailroom.create_member("Mo", "mo@crm.test").await;
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/v1/messages/{message}"),
            Some(json!({"seen": true})),
        ),
        (
            Method::POST,
            format!("/v1/messages/{message}/move"),
            Some(json!({"folder_id": "x"})),
        ),
        (Method::DELETE, format!("/v1/messages/{message}"), None),
        (
            Method::POST,
            path.clone(),
            Some(json!({"to": [{"email": "bob@example.test"}], "subject": "s", "text": "t"})),
        ),
    ] {
        let answer = setup
            .mailroom
            .call_as(SERVICE_TOKEN, Some(&member_id), method, &path, body)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.body
        );
    }
    // Nothing changed meanwhile.
    let (_, body) = call(
        &setup,
        Method::GET,
        &format!("/v1/messages/{message}"),
        None,
    )
    .await;
    assert_eq!(body["seen"], false);
}
