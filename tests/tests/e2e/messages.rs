//! The messages API over mail synced from Dovecot: headers in odd charsets and encoded
//! words, multipart bodies, sanitized HTML, attachments byte for byte, the raw message
//! exactly as fetched, threads, a 60 MB message, and who may see what.

use base64::Engine;
use mailroom_tests::mailbox::{Setup, days_ago, rfc2822_days_ago};
use mailroom_tests::mailroom::SERVICE_TOKEN;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A multipart/mixed message: a Latin-1 text part, an HTML part with a script, an inline
/// image referenced by `cid:` and a PDF attachment.
fn rich_message(pdf: &[u8], png: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    raw.extend_from_slice(
        format!(
            "From: =?ISO-8859-1?Q?Ren=E9e_M=FCller?= <renee@client.test>\r\n\
To: alice@example.test, \"Bob\" <bob@example.test>\r\n\
Cc: carol@example.test\r\n\
Reply-To: sales@client.test\r\n\
Subject: =?UTF-8?B?UXVvdGUgZm9yIENhZsOp?= =?ISO-8859-1?Q?_n=B02?=\r\n\
Message-ID: <rich@client.test>\r\n\
Date: {}\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
--alt\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\n\
Bonjour, voici le devis pour le caf=E9.\r\n\
--alt\r\n\
Content-Type: multipart/related; boundary=\"rel\"\r\n\r\n\
--rel\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n\
<p onmouseover=\"steal()\">Bonjour <b>Alice</b><script>steal()</script>\
<img src=\"cid:logo@client.test\"></p><iframe src=\"https://evil.test\"></iframe>\r\n\
--rel\r\n\
Content-Type: image/png\r\n\
Content-ID: <logo@client.test>\r\n\
Content-Disposition: inline; filename=\"logo.png\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n",
            rfc2822_days_ago(1)
        )
        .as_bytes(),
    );
    raw.extend_from_slice(B64.encode(png).as_bytes());
    raw.extend_from_slice(
        b"\r\n--rel--\r\n--alt--\r\n--outer\r\n\
Content-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"quote.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n",
    );
    for line in B64.encode(pdf).as_bytes().chunks(76) {
        raw.extend_from_slice(line);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"--outer--\r\n");
    raw
}

fn thread_message(id: &str, references: &[&str], subject: &str, days: i64) -> Vec<u8> {
    let mut headers = format!(
        "From: dana@client.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\
Message-ID: <{id}>\r\nDate: {}\r\n",
        rfc2822_days_ago(days)
    );
    if let Some(parent) = references.last() {
        headers.push_str(&format!("In-Reply-To: <{parent}>\r\n"));
        let list: Vec<String> = references.iter().map(|r| format!("<{r}>")).collect();
        headers.push_str(&format!("References: {}\r\n", list.join(" ")));
    }
    format!("{headers}\r\nText of {id}.\r\n").into_bytes()
}

#[tokio::test]
async fn messages_read_back_as_sent_with_bodies_attachments_and_threads() {
    let setup = Setup::start().await;
    let pdf: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    let rich = rich_message(&pdf, &png);
    let mut imap = setup.imap("alice").await;
    imap.append("INBOX", "\\Seen", &days_ago(1), &rich).await;
    // A thread whose reply arrives before its root, and an unrelated message.
    imap.append(
        "INBOX",
        "",
        &days_ago(2),
        &thread_message("t2@c", &["t0@c", "t1@c"], "Re: Plan", 2),
    )
    .await;
    imap.append(
        "INBOX",
        "",
        &days_ago(4),
        &thread_message("t0@c", &[], "Plan", 4),
    )
    .await;
    imap.append(
        "INBOX",
        "",
        &days_ago(3),
        &thread_message("t1@c", &["t0@c"], "Re: Plan", 3),
    )
    .await;
    imap.append(
        "INBOX",
        "",
        &days_ago(3),
        &thread_message("other@c", &[], "Plan", 3),
    )
    .await;
    // Not mail at all: kept as it came, with what could be read.
    imap.append(
        "INBOX",
        "",
        &days_ago(5),
        b"garbage \xff\xfe without any headers",
    )
    .await;
    imap.logout().await;
    let account = setup.connect("alice", "1_month", json!({})).await;

    let listed = setup.mailroom.messages(&account, "").await;
    assert_eq!(listed.len(), 6);
    let find = |id: &str| -> Value {
        listed
            .iter()
            .find(|m| m["message_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no message {id}"))
    };
    let item = find("rich@client.test");
    assert_eq!(item["subject"], "Quote for Café n°2");
    assert_eq!(
        item["from"],
        json!({"name": "Renée Müller", "email": "renee@client.test"})
    );
    assert_eq!(
        item["to"],
        json!([{"name": null, "email": "alice@example.test"}, {"name": "Bob", "email": "bob@example.test"}])
    );
    assert_eq!(item["cc"][0]["email"], "carol@example.test");
    assert_eq!(item["reply_to"][0]["email"], "sales@client.test");
    assert_eq!(
        (item["seen"].as_bool(), item["has_attachments"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(
        item["snippet"]
            .as_str()
            .unwrap()
            .starts_with("Bonjour, voici le devis pour le café")
    );
    assert_eq!(item["size"].as_u64(), Some(rich.len() as u64));

    let id = item["id"].as_str().unwrap();
    let full = setup.mailroom.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.body);
    assert!(
        full.body["text"]
            .as_str()
            .unwrap()
            .contains("le devis pour le café")
    );
    let html = full.body["html"].as_str().unwrap();
    assert!(html.contains("<b>Alice</b>"), "{html}");
    for banned in ["<script", "onmouseover", "<iframe", "cid:"] {
        assert!(!html.contains(banned), "{banned} in {html}");
    }
    let attachments = full.body["attachments"].as_array().unwrap();
    let logo = attachments
        .iter()
        .find(|a| a["filename"] == "logo.png")
        .unwrap();
    assert_eq!(
        (logo["inline"].as_bool(), logo["content_id"].as_str()),
        (Some(true), Some("logo@client.test"))
    );
    let logo_url = format!(
        "/v1/messages/{id}/attachments/{}",
        logo["id"].as_str().unwrap()
    );
    assert!(html.contains(&logo_url), "{html}");
    let raw_html = setup
        .mailroom
        .get(&format!("/v1/messages/{id}?html=raw"))
        .await;
    assert!(
        raw_html.body["html"]
            .as_str()
            .unwrap()
            .contains("<script>steal()</script>")
    );

    let quote = attachments
        .iter()
        .find(|a| a["filename"] == "quote.pdf")
        .unwrap();
    assert_eq!(quote["content_type"], "application/pdf");
    assert_eq!(quote["size"].as_u64(), Some(pdf.len() as u64));
    let download = |path: String| {
        let request = setup
            .mailroom
            .http()
            .get(setup.mailroom.url(&path))
            .bearer_auth(mailroom_tests::mailroom::ADMIN_TOKEN);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let kind = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, kind, response.bytes().await.unwrap().to_vec())
        }
    };
    let (status, kind, bytes) = download(format!(
        "/v1/messages/{id}/attachments/{}",
        quote["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (StatusCode::OK, Some("application/pdf"))
    );
    assert_eq!(bytes, pdf, "the attachment comes back byte for byte");
    let (_, _, logo_bytes) = download(logo_url).await;
    assert_eq!(logo_bytes, png);
    let (status, kind, raw) = download(format!("/v1/messages/{id}/raw")).await;
    assert_eq!(
        (status, kind.as_deref()),
        (StatusCode::OK, Some("message/rfc822"))
    );
    assert_eq!(
        raw, rich,
        "the raw message is exactly what the server holds"
    );
    let (status, _, _) = download(format!("/v1/messages/{id}/attachments/att_99")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // One thread for the three, whatever order they arrived in; the look-alike stays apart.
    let thread = find("t0@c")["thread_id"].clone();
    assert_eq!(find("t1@c")["thread_id"], thread);
    assert_eq!(find("t2@c")["thread_id"], thread);
    assert_ne!(find("other@c")["thread_id"], thread);

    let garbage = listed.iter().find(|m| m["message_id"].is_null()).unwrap();
    let (_, _, garbage_raw) = download(format!(
        "/v1/messages/{}/raw",
        garbage["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(garbage_raw, b"garbage \xff\xfe without any headers");
}

#[tokio::test]
async fn only_those_who_may_open_the_account_see_its_mail_and_events() {
    let setup = Setup::start().await;
    let mut imap = setup.imap("alice").await;
    imap.append(
        "INBOX",
        "",
        &days_ago(1),
        &thread_message("private@c", &[], "Private", 1),
    )
    .await;
    imap.logout().await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let message = setup.mailroom.messages(&account, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A member, who does not own this personal account.
    let member_id = setup.mailroom.create_member("Mo", "mo@crm.test").await;
    let mailroom = &setup.mailroom;
    let as_member = |method: Method, path: String| {
        let id = member_id.clone();
        async move {
            mailroom
                .call_as(SERVICE_TOKEN, Some(&id), method, &path, None)
                .await
        }
    };
    for path in [
        format!("/v1/messages/{message}"),
        format!("/v1/messages/{message}/raw"),
        format!("/v1/messages/{message}/attachments/att_0"),
        format!("/v1/accounts/{account}/messages"),
    ] {
        let answer = as_member(Method::GET, path.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.body
        );
    }
    let sync = as_member(Method::POST, format!("/v1/accounts/{account}/sync")).await;
    assert_eq!(sync.status, StatusCode::NOT_FOUND);

    let mine = setup.mailroom.get("/v1/events?limit=500").await.body;
    let theirs = as_member(Method::GET, "/v1/events?limit=500".into())
        .await
        .body;
    let about_account = |events: &Value| {
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["data"]["account_id"] == account.as_str())
            .count()
    };
    assert!(about_account(&mine) >= 2, "{mine:#}");
    assert_eq!(about_account(&theirs), 0, "{theirs:#}");
    let created = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "message.created")
        .unwrap();
    assert_eq!(
        created["data"],
        json!({"account_id": account, "message_id": message, "initial": true})
    );

    // A long poll returns as soon as something happens, and 400s on nonsense.
    let cursor = mine["next_cursor"].as_str().unwrap().to_owned();
    let waiting = setup
        .mailroom
        .get(&format!("/v1/events?after={cursor}&wait=1"))
        .await;
    assert_eq!(waiting.status, StatusCode::OK);
    assert_eq!(waiting.body["items"], json!([]));
    assert_eq!(waiting.body["next_cursor"], cursor.as_str());
    let bad = setup.mailroom.get("/v1/events?wait=forever").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_60_mb_message_syncs_in_parts() {
    let setup = Setup::start().await;
    // 60 MB of attachment, base64 in 76-column lines like any mail client writes it.
    let payload: Vec<u8> = (0..45_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut raw = format!(
        "From: dana@client.test\r\nTo: alice@example.test\r\nSubject: Big one\r\n\
Message-ID: <big@client.test>\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
See attached.\r\n--b\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"big.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        rfc2822_days_ago(1)
    )
    .into_bytes();
    for line in B64.encode(&payload).as_bytes().chunks(76) {
        raw.extend_from_slice(line);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"--b--\r\n");
    assert!(raw.len() > 60_000_000);
    let mut imap = setup.imap("alice").await;
    imap.append(
        "INBOX",
        "",
        &days_ago(1),
        &thread_message("small@c", &[], "Small", 2),
    )
    .await;
    imap.append("INBOX", "", &days_ago(1), &raw).await;
    imap.logout().await;

    let account = setup.connect("alice", "1_month", json!({})).await;
    let listed = setup.mailroom.messages(&account, "").await;
    assert_eq!(listed.len(), 2);
    let big = listed.iter().find(|m| m["subject"] == "Big one").unwrap();
    assert_eq!(big["size"].as_u64(), Some(raw.len() as u64));
    let id = big["id"].as_str().unwrap();
    let response = setup
        .mailroom
        .http()
        .get(setup.mailroom.url(&format!("/v1/messages/{id}/raw")))
        .bearer_auth(mailroom_tests::mailroom::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let fetched = response.bytes().await.unwrap();
    assert!(
        fetched.as_ref() == raw.as_slice(),
        "the 60 MB message comes back byte for byte"
    );
}
