//! CRM records against real mail: messages synced from Dovecot are filed under the contacts,
//! companies and deals their addresses concern, as records come, change and go; timelines
//! span accounts; unknown senders become contacts by the rules of the account.

use mailroom_tests::mailbox::{Setup, days_ago, rfc2822_days_ago};
use mailroom_tests::mailroom::SERVICE_TOKEN;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// A message with these header lines (From, To, ... as given) and a short body, dated and
/// delivered `days` ago.
fn mail(message_id: &str, headers: &str, days: i64) -> (i64, Vec<u8>) {
    let raw = format!(
        "{headers}\r\nSubject: {message_id}\r\nMessage-ID: <{message_id}>\r\nDate: {}\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n",
        rfc2822_days_ago(days)
    );
    (days, raw.into_bytes())
}

async fn append(setup: &Setup, local: &str, messages: &[(i64, Vec<u8>)]) {
    let mut imap = setup.imap(local).await;
    for (days, raw) in messages {
        imap.append("INBOX", "", &days_ago(*days), raw).await;
    }
    imap.logout().await;
}

async fn put(setup: &Setup, path: &str, body: Value) -> StatusCode {
    let answer = setup.mailroom.call(Method::PUT, path, Some(body)).await;
    assert!(answer.status.is_success(), "{path}: {}", answer.body);
    answer.status
}

/// The subjects on a record's timeline, newest first.
async fn timeline(setup: &Setup, record: &str) -> Vec<String> {
    let answer = setup
        .mailroom
        .get(&format!("/v1/records/{record}/messages?limit=500"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect()
}

/// The records of the account's message with this subject, as `type/id`.
async fn records_of(setup: &Setup, account: &str, subject: &str) -> BTreeSet<String> {
    let listed = setup.mailroom.messages(account, "").await;
    let message = listed
        .iter()
        .find(|m| m["subject"] == subject)
        .unwrap_or_else(|| panic!("no message {subject}"));
    message["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["type"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            )
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn mail_is_filed_under_its_records_as_they_come_change_and_go() {
    let setup = Setup::start().await;
    append(
        &setup,
        "alice",
        &[
            mail(
                "from-ann",
                "From: Ann <Ann@ACME.test>\r\nTo: alice@example.test",
                4,
            ),
            mail(
                "from-bob",
                "From: bob@globex.test\r\nTo: alice@example.test\r\nCc: ann@acme.test",
                3,
            ),
            mail(
                "from-carl",
                "From: carl@acme.test\r\nTo: alice@example.test",
                2,
            ),
            mail(
                "to-dora",
                "From: alice@example.test\r\nTo: dora@initech.test",
                1,
            ),
        ],
    )
    .await;
    // Records pushed before the sync, one naming a company that arrives later.
    put(
        &setup,
        "/v1/records/contacts/ann",
        json!({"name": "Ann", "emails": ["ann@acme.test"], "company_ids": ["acme"]}),
    )
    .await;
    put(
        &setup,
        "/v1/records/deals/d1",
        json!({"name": "Big deal", "contact_ids": ["ann"], "company_ids": []}),
    )
    .await;
    put(
        &setup,
        "/v1/records/contacts/me",
        json!({"name": "Alice", "emails": ["alice@example.test"]}),
    )
    .await;
    let account = setup.connect("alice", "1_month", json!({})).await;

    assert_eq!(
        records_of(&setup, &account, "from-ann").await,
        set(&["contacts/ann", "deals/d1"])
    );
    assert_eq!(
        records_of(&setup, &account, "from-bob").await,
        set(&["contacts/ann", "deals/d1"])
    );
    assert_eq!(
        timeline(&setup, "contacts/ann").await,
        ["from-bob", "from-ann"]
    );
    // The account's own address does not file all of its mail under its owner's contact.
    assert!(timeline(&setup, "contacts/me").await.is_empty());

    // The company arrives: by Ann's company_ids and by its domain, retroactively.
    let status = put(
        &setup,
        "/v1/records/companies/acme",
        json!({"name": "Acme", "domains": ["acme.test"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        timeline(&setup, "companies/acme").await,
        ["from-carl", "from-bob", "from-ann"]
    );
    // A contact added after the sync gets its history; a deal linking a company gets the
    // company's mail.
    put(
        &setup,
        "/v1/records/contacts/dora",
        json!({"name": "Dora", "emails": ["DORA@initech.test"]}),
    )
    .await;
    assert_eq!(timeline(&setup, "contacts/dora").await, ["to-dora"]);
    put(
        &setup,
        "/v1/records/deals/d2",
        json!({"name": "Initech", "contact_ids": ["dora"], "company_ids": []}),
    )
    .await;
    assert_eq!(timeline(&setup, "deals/d2").await, ["to-dora"]);
    assert_eq!(
        records_of(&setup, &account, "to-dora").await,
        set(&["contacts/dora", "deals/d2"])
    );

    // Replacing Ann without her address removes exactly what it made.
    let status = put(
        &setup,
        "/v1/records/contacts/ann",
        json!({"name": "Ann", "emails": []}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(timeline(&setup, "contacts/ann").await.is_empty());
    assert!(timeline(&setup, "deals/d1").await.is_empty());
    assert_eq!(
        records_of(&setup, &account, "from-ann").await,
        set(&["companies/acme"])
    );
    assert_eq!(
        timeline(&setup, "companies/acme").await,
        ["from-carl", "from-bob", "from-ann"]
    );

    // Deleting a record removes its filing; it is gone.
    let deleted = setup
        .mailroom
        .call(Method::DELETE, "/v1/records/companies/acme", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        setup
            .mailroom
            .get("/v1/records/companies/acme")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(records_of(&setup, &account, "from-carl").await.is_empty());

    // New mail is filed as it arrives.
    append(
        &setup,
        "alice",
        &[mail(
            "dora-again",
            "From: dora@initech.test\r\nTo: alice@example.test",
            0,
        )],
    )
    .await;
    setup.mailroom.sync(&account).await;
    assert_eq!(timeline(&setup, "contacts/dora").await[0], "dora-again");

    // The events say what was filed.
    let events = setup
        .mailroom
        .get("/v1/events?after=0&limit=500")
        .await
        .body;
    let associated = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "record.associated" && e["data"]["record"]["id"] == "dora")
        .count();
    assert_eq!(associated, 2);
}

#[tokio::test]
async fn a_timeline_spans_accounts_once_and_is_open_to_every_user() {
    let setup = Setup::start().await;
    // HTML with an inline image, in two personal mailboxes.
    let both = (
        1,
        format!(
            "From: Ann <ann@acme.test>\r\nTo: alice@example.test, bob@example.test\r\n\
Subject: to-both\r\nMessage-ID: <to-both>\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/related; boundary=\"r\"\r\n\r\n\
--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p>Hello.</p><img src=\"cid:logo@acme\">\r\n\
--r\r\nContent-Type: image/png\r\nContent-ID: <logo@acme>\r\n\
Content-Disposition: inline; filename=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
iVBORw0KGgoAAAANSUhEUg==\r\n--r--\r\n",
            rfc2822_days_ago(1)
        )
        .into_bytes(),
    );
    append(&setup, "alice", std::slice::from_ref(&both)).await;
    append(&setup, "bob", &[both]).await;
    put(
        &setup,
        "/v1/records/contacts/ann",
        json!({"name": "Ann", "emails": ["ann@acme.test"]}),
    )
    .await;
    let alice = setup.connect("alice", "1_month", json!({})).await;
    let bob = setup.connect("bob", "1_month", json!({})).await;
    assert_eq!(
        records_of(&setup, &bob, "to-both").await,
        set(&["contacts/ann"])
    );

    // One item although two accounts hold the message.
    assert_eq!(timeline(&setup, "contacts/ann").await, ["to-both"]);

    // A member who cannot open these personal mailboxes reads the timeline and the message
    // through the record, and nothing else.
    let member = setup.mailroom.create_member("Mo", "mo@crm.test").await;
    let as_member = |path: String| {
        let member = member.clone();
        let mailroom = &setup.mailroom;
        async move {
            mailroom
                .call_as(SERVICE_TOKEN, Some(&member), Method::GET, &path, None)
                .await
        }
    };
    let listed = as_member("/v1/records/contacts/ann/messages".into()).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let message = items[0]["id"].as_str().unwrap().to_owned();
    let full = as_member(format!("/v1/records/contacts/ann/messages/{message}")).await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.body);
    // The inline image is served through the record as well.
    let image = format!("/v1/records/contacts/ann/messages/{message}/attachments/att_0");
    assert!(
        full.body["html"].as_str().unwrap().contains(&image),
        "{}",
        full.body
    );
    let downloaded = setup
        .mailroom
        .http()
        .get(setup.mailroom.url(&image))
        .bearer_auth(SERVICE_TOKEN)
        .header("x-mailroom-user", &member)
        .send()
        .await
        .unwrap();
    assert_eq!(downloaded.status(), StatusCode::OK);
    assert_eq!(
        downloaded.bytes().await.unwrap().as_ref(),
        [
            0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, b'I', b'H', b'D', b'R'
        ]
    );
    assert_eq!(
        as_member(format!("/v1/messages/{message}/attachments/att_0"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        as_member(format!("/v1/messages/{message}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        as_member(format!("/v1/accounts/{alice}/messages"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Not on that record's timeline: 404 there.
    put(
        &setup,
        "/v1/records/contacts/zed",
        json!({"name": "Zed", "emails": ["zed@nowhere.test"]}),
    )
    .await;
    assert_eq!(
        as_member(format!("/v1/records/contacts/zed/messages/{message}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Members read records but do not write them.
    let written = setup
        .mailroom
        .call_as(
            SERVICE_TOKEN,
            None,
            Method::PUT,
            "/v1/records/companies/acme",
            Some(json!({"name": "Acme", "domains": ["acme.test"]})),
        )
        .await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.body);
    let read = setup
        .mailroom
        .call_as(
            SERVICE_TOKEN,
            Some(&member),
            Method::GET,
            "/v1/records/companies/acme",
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_record_requests_are_refused_clearly() {
    let setup = Setup::start().await;
    for (path, body, status, field) in [
        (
            "/v1/records/contacts/a%2Fb",
            json!({"name": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "id",
        ),
        (
            "/v1/records/contacts/c1",
            json!({"emails": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            "/v1/records/contacts/c1",
            json!({"name": "x", "emails": ["nope"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "emails",
        ),
        (
            "/v1/records/contacts/c1",
            json!({"name": "x", "emails": "a@b.test"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "emails",
        ),
        (
            "/v1/records/companies/c1",
            json!({"name": "x", "domains": ["bad domain"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "domains",
        ),
        (
            "/v1/records/deals/d1",
            json!({"name": "x", "contact_ids": ["a/b"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "contact_ids",
        ),
        (
            "/v1/records/contacts/c1",
            json!({"name": "x", "phone": "1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "phone",
        ),
    ] {
        let answer = setup.mailroom.call(Method::PUT, path, Some(body)).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert_eq!(answer.body["error"]["field"], field, "{}", answer.body);
    }
    let unknown = setup
        .mailroom
        .call(
            Method::PUT,
            "/v1/records/people/p1",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let member = setup.mailroom.create_member("Mo", "mo@crm.test").await;
    let member = member.as_str();
    let refused = setup
        .mailroom
        .call_as(
            SERVICE_TOKEN,
            Some(member),
            Method::PUT,
            "/v1/records/contacts/c1",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(
        setup.mailroom.get("/v1/records/contacts/c1").await.status,
        StatusCode::NOT_FOUND
    );
}

/// Connects alice with `create_contact` after seeding her INBOX with `raw`; returns the
/// contacts Mailroom created, as (name, email).
async fn created_from(raw: (i64, Vec<u8>)) -> BTreeSet<(String, String)> {
    let setup = Setup::start().await;
    append(&setup, "alice", &[raw]).await;
    // bob's mailbox is connected too: its address is Mailroom's own.
    setup.connect("bob", "now", json!({})).await;
    setup
        .connect("alice", "1_month", json!({"create_contact": true}))
        .await;
    created(&setup).await
}

async fn created(setup: &Setup) -> BTreeSet<(String, String)> {
    let listed = setup
        .mailroom
        .get("/v1/records/contacts?created_by=mailroom&limit=500")
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["created_by"], "mailroom");
            (
                c["name"].as_str().unwrap().to_owned(),
                c["emails"][0].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn one(name: &str, email: &str) -> BTreeSet<(String, String)> {
    [(name.to_owned(), email.to_owned())].into_iter().collect()
}

#[tokio::test]
async fn an_unknown_sender_becomes_a_contact_named_by_the_header() {
    let raw = mail(
        "m",
        "From: Erin Example <Erin@Client.test>\r\nTo: alice@example.test",
        1,
    );
    assert_eq!(
        created_from(raw).await,
        one("Erin Example", "erin@client.test")
    );
}

#[tokio::test]
async fn a_sender_without_a_name_is_named_from_the_address() {
    let raw = mail(
        "m",
        "From: frank.jones@client.test\r\nTo: alice@example.test",
        1,
    );
    assert_eq!(
        created_from(raw).await,
        one("Frank Jones", "frank.jones@client.test")
    );
}

#[tokio::test]
async fn the_recipients_of_mail_the_account_sent_become_contacts() {
    let raw = mail(
        "m",
        "From: alice@example.test\r\nTo: Gina <gina@client.test>\r\nCc: bob@example.test",
        1,
    );
    assert_eq!(created_from(raw).await, one("Gina", "gina@client.test"));
}

#[tokio::test]
async fn no_contact_for_a_connected_account_or_a_user() {
    let bob = mail(
        "m1",
        "From: Bob <bob@example.test>\r\nTo: alice@example.test",
        1,
    );
    assert!(created_from(bob).await.is_empty());
    let admin = mail(
        "m2",
        "From: Admin <admin@localhost>\r\nTo: alice@example.test",
        1,
    );
    assert!(created_from(admin).await.is_empty());
}

#[tokio::test]
async fn no_contact_for_bounces() {
    let daemon = mail(
        "m1",
        "From: MAILER-DAEMON@mx.client.test\r\nTo: alice@example.test",
        1,
    );
    assert!(created_from(daemon).await.is_empty());
    let null_path = mail(
        "m2",
        "Return-Path: <>\r\nFrom: Mail System <system@mx.client.test>\r\nTo: alice@example.test",
        1,
    );
    assert!(created_from(null_path).await.is_empty());
    let report = format!(
        "From: Mail Delivery <delivery@mx.client.test>\r\nTo: alice@example.test\r\n\
Subject: Undelivered\r\nMessage-ID: <report@x>\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nIt bounced.\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.client.test\r\n\r\n\
--b--\r\n",
        rfc2822_days_ago(1)
    );
    assert!(created_from((1, report.into_bytes())).await.is_empty());
}

#[tokio::test]
async fn no_contact_for_automatic_replies() {
    let raw = mail(
        "m",
        "From: Away <away@client.test>\r\nTo: alice@example.test\r\nAuto-Submitted: auto-replied",
        1,
    );
    assert!(created_from(raw).await.is_empty());
}

#[tokio::test]
async fn no_contact_for_no_reply_addresses() {
    let raw = mail(
        "m",
        "From: Shop <no-reply@shop.test>\r\nTo: alice@example.test",
        1,
    );
    assert!(created_from(raw).await.is_empty());
}

#[tokio::test]
async fn no_contact_for_mailing_list_traffic() {
    let list = mail(
        "m1",
        "From: Poster <poster@client.test>\r\nTo: list@lists.test\r\nList-Id: <dev.lists.test>",
        1,
    );
    assert!(created_from(list).await.is_empty());
    let bulk = mail(
        "m2",
        "From: News <news@client.test>\r\nTo: alice@example.test\r\nPrecedence: bulk",
        1,
    );
    assert!(created_from(bulk).await.is_empty());
}

#[tokio::test]
async fn no_contact_unless_the_account_asks_for_it() {
    let setup = Setup::start().await;
    append(
        &setup,
        "alice",
        &[mail(
            "m",
            "From: Ivy <ivy@client.test>\r\nTo: alice@example.test",
            1,
        )],
    )
    .await;
    setup.connect("alice", "1_month", json!({})).await;
    assert!(created(&setup).await.is_empty());
}

#[tokio::test]
async fn two_accounts_with_the_same_sender_create_one_contact_which_a_crm_contact_absorbs() {
    let setup = Setup::start().await;
    let from_hank =
        |id: &str, to: &str| mail(id, &format!("From: Hank <hank@client.test>\r\nTo: {to}"), 1);
    append(&setup, "alice", &[from_hank("h1", "alice@example.test")]).await;
    append(&setup, "carol", &[from_hank("h2", "carol@example.test")]).await;
    let (alice, carol) = (
        setup.connect("alice", "1_month", json!({"create_contact": true})),
        setup.connect("carol", "1_month", json!({"create_contact": true})),
    );
    let (alice, carol) = tokio::join!(alice, carol);
    let contacts = setup
        .mailroom
        .get("/v1/records/contacts?created_by=mailroom")
        .await
        .body["items"]
        .clone();
    assert_eq!(contacts.as_array().unwrap().len(), 1, "{contacts}");
    let created_id = contacts[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(contacts[0]["emails"], json!(["hank@client.test"]));
    let created_path = format!("contacts/{created_id}");
    assert_eq!(timeline(&setup, &created_path).await.len(), 2);

    // The CRM pushes its own Hank: the created contact is absorbed, its mail moves over.
    let status = put(
        &setup,
        "/v1/records/contacts/crm-hank",
        json!({"name": "Hank Hill", "emails": ["Hank@client.test"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        setup
            .mailroom
            .get(&format!("/v1/records/{created_path}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(timeline(&setup, "contacts/crm-hank").await.len(), 2);
    assert_eq!(
        records_of(&setup, &alice, "h1").await,
        set(&["contacts/crm-hank"])
    );
    assert_eq!(
        records_of(&setup, &carol, "h2").await,
        set(&["contacts/crm-hank"])
    );
    assert!(created(&setup).await.is_empty());
    let events = setup
        .mailroom
        .get("/v1/events?after=0&limit=500")
        .await
        .body;
    let kinds: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "contact.created" || e["type"] == "contact.merged")
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(kinds[0]["data"]["record"]["id"], created_id.as_str());
    assert_eq!(kinds[1]["data"]["from"]["id"], created_id.as_str());
    assert_eq!(kinds[1]["data"]["into"]["id"], "crm-hank");
}
