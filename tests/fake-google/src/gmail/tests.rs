//! The mailbox rules: threading, history records and pages, listing order,
//! filters and pages, sending, and the formats of `messages.get`.

use super::*;

fn mail(n: u32, extra: &str) -> Vec<u8> {
    format!(
        "From: bob@example.com\r\nTo: ann@example.com\r\nSubject: note {n}\r\n\
         Message-ID: <m{n}@example.com>\r\n{extra}\r\nbody {n}\r\n"
    )
    .into_bytes()
}

fn labels(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn list(mailbox: &Mailbox, params: ListParams) -> Value {
    mailbox
        .list(&ListParams {
            max_results: if params.max_results == 0 {
                100
            } else {
                params.max_results
            },
            ..params
        })
        .unwrap()
}

fn ids(answer: &Value) -> Vec<String> {
    answer["messages"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn history(
    mailbox: &Mailbox,
    start: u64,
    max: usize,
    token: Option<String>,
) -> Result<Value, ApiError> {
    mailbox.history(&HistoryParams {
        start_history_id: Some(start.to_string()),
        max_results: max,
        page_token: token,
        ..HistoryParams::default()
    })
}

#[test]
fn ids_are_gmail_shaped_and_threads_follow_replies() {
    let mut mailbox = Mailbox::new("ann@example.com");
    let first = mailbox.insert(mail(1, ""), labels(&["INBOX"]), 1_000, Threading::Headers);
    let reply = mailbox.insert(
        mail(2, "In-Reply-To: <m1@example.com>\r\n"),
        labels(&["INBOX"]),
        2_000,
        Threading::Headers,
    );
    let other = mailbox.insert(
        mail(3, "References: <nowhere@example.com>\r\n"),
        labels(&["INBOX"]),
        3_000,
        Threading::Headers,
    );
    let stored = mailbox.stored(&hex(reply)).unwrap();
    assert_eq!(stored.id.len(), 16);
    assert!(
        stored
            .id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(stored.thread_id, hex(first));
    assert_eq!(mailbox.stored(&hex(other)).unwrap().thread_id, hex(other));
    assert!(first < reply && reply < other);
    assert_eq!(mailbox.profile()["threadsTotal"], 2);
    assert_eq!(mailbox.profile()["messagesTotal"], 3);
}

#[test]
fn every_change_appends_one_record_with_the_labels_after_it() {
    let mut mailbox = Mailbox::new("ann@example.com");
    let start = mailbox.history_id();
    let id = hex(mailbox.insert(
        mail(1, ""),
        labels(&["INBOX", "UNREAD"]),
        1_000,
        Threading::Headers,
    ));
    mailbox
        .modify(&id, &labels(&["STARRED"]), &labels(&["UNREAD"]))
        .unwrap();
    // Nothing to change: no record.
    mailbox.modify(&id, &labels(&["STARRED"]), &[]).unwrap();
    mailbox.trash(&id).unwrap();
    mailbox.untrash(&id).unwrap();
    mailbox.delete(&id).unwrap();
    assert_eq!(mailbox.history_id(), start + 5);

    let answer = history(&mailbox, start, 100, None).unwrap();
    assert_eq!(answer["historyId"], (start + 5).to_string());
    let records = answer["history"].as_array().unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(records[0]["id"], (start + 1).to_string());
    assert_eq!(
        records[0]["messagesAdded"][0]["message"]["labelIds"],
        json!(["INBOX", "UNREAD"])
    );
    assert_eq!(records[1]["labelsAdded"][0]["labelIds"], json!(["STARRED"]));
    assert_eq!(
        records[1]["labelsRemoved"][0]["labelIds"],
        json!(["UNREAD"])
    );
    assert_eq!(
        records[1]["labelsRemoved"][0]["message"]["labelIds"],
        json!(["INBOX", "STARRED"])
    );
    assert_eq!(records[2]["labelsAdded"][0]["labelIds"], json!(["TRASH"]));
    assert_eq!(records[2]["labelsRemoved"][0]["labelIds"], json!(["INBOX"]));
    assert_eq!(
        records[2]["labelsAdded"][0]["message"]["labelIds"],
        json!(["STARRED", "TRASH"])
    );
    assert_eq!(
        records[3]["labelsRemoved"][0]["message"]["labelIds"],
        json!(["STARRED"])
    );
    assert_eq!(records[4]["messagesDeleted"][0]["message"]["id"], id);
    assert_eq!(records[4]["messages"][0]["id"], id);
    assert!(mailbox.stored(&id).is_none());
}

#[test]
fn history_pages_filters_and_forgetting() {
    let mut mailbox = Mailbox::new("ann@example.com");
    let start = mailbox.history_id();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(hex(mailbox.insert(
            mail(n, ""),
            labels(&["INBOX"]),
            i64::from(n),
            Threading::Headers,
        )));
    }
    mailbox.modify(&ids[0], &labels(&["STARRED"]), &[]).unwrap();

    let first = history(&mailbox, start, 4, None).unwrap();
    assert_eq!(first["history"].as_array().unwrap().len(), 4);
    let token = first["nextPageToken"].as_str().unwrap().to_owned();
    let second = history(&mailbox, start, 4, Some(token.clone())).unwrap();
    assert_eq!(second["history"].as_array().unwrap().len(), 2);
    assert!(second.get("nextPageToken").is_none());
    assert_eq!(
        second["history"][1]["labelsAdded"][0]["labelIds"],
        json!(["STARRED"])
    );
    // A token belongs to its startHistoryId.
    assert_eq!(
        history(&mailbox, start + 1, 4, Some(token))
            .unwrap_err()
            .status,
        400
    );

    let only_labels = mailbox
        .history(&HistoryParams {
            start_history_id: Some(start.to_string()),
            max_results: 100,
            history_types: vec![HistoryType::LabelAdded],
            ..HistoryParams::default()
        })
        .unwrap();
    assert_eq!(only_labels["history"].as_array().unwrap().len(), 1);
    let starred = mailbox
        .history(&HistoryParams {
            start_history_id: Some(start.to_string()),
            max_results: 100,
            label_id: Some("STARRED".to_owned()),
            ..HistoryParams::default()
        })
        .unwrap();
    assert_eq!(starred["history"].as_array().unwrap().len(), 1);

    // Up to date: no records, the current historyId.
    let now = mailbox.history_id();
    let empty = history(&mailbox, now, 100, None).unwrap();
    assert!(empty.get("history").is_none());
    assert_eq!(empty["historyId"], now.to_string());

    mailbox.forget_history();
    assert_eq!(history(&mailbox, start, 100, None).unwrap_err().status, 404);
    assert!(history(&mailbox, now, 100, None).is_ok());
    assert_eq!(
        history(&mailbox, now + 1, 100, None).unwrap_err().status,
        404
    );
    let missing = mailbox.history(&HistoryParams {
        max_results: 100,
        ..HistoryParams::default()
    });
    assert_eq!(missing.unwrap_err().status, 400);
}

#[test]
fn list_is_newest_first_and_pages_stably() {
    let mut mailbox = Mailbox::new("ann@example.com");
    let a = hex(mailbox.insert(mail(1, ""), labels(&["INBOX"]), 5_000, Threading::Headers));
    let b = hex(mailbox.insert(mail(2, ""), labels(&["INBOX"]), 9_000, Threading::Headers));
    let c = hex(mailbox.insert(mail(3, ""), labels(&["INBOX"]), 5_000, Threading::Headers));
    let d = hex(mailbox.insert(mail(4, ""), labels(&["INBOX"]), 1_000, Threading::Headers));
    let all = list(&mailbox, ListParams::default());
    assert_eq!(ids(&all), vec![b.clone(), c.clone(), a.clone(), d.clone()]);
    assert_eq!(all["resultSizeEstimate"], 4);

    let page1 = list(
        &mailbox,
        ListParams {
            max_results: 2,
            ..ListParams::default()
        },
    );
    assert_eq!(ids(&page1), vec![b.clone(), c.clone()]);
    // A message arriving between pages does not shift the next page.
    mailbox.insert(mail(5, ""), labels(&["INBOX"]), 20_000, Threading::Headers);
    let token = page1["nextPageToken"].as_str().unwrap().to_owned();
    let page2 = list(
        &mailbox,
        ListParams {
            max_results: 2,
            page_token: Some(token),
            ..ListParams::default()
        },
    );
    assert_eq!(ids(&page2), vec![a, d]);
    assert!(page2.get("nextPageToken").is_none());

    let bad = mailbox.list(&ListParams {
        max_results: 2,
        page_token: Some("nonsense".into()),
        ..ListParams::default()
    });
    assert_eq!(bad.unwrap_err().status, 400);
}

#[test]
fn list_filters_labels_queries_and_spam_trash() {
    let mut mailbox = Mailbox::new("ann@example.com");
    let work = mailbox.add_label("Work");
    assert_eq!(work, "Label_1");
    assert_eq!(mailbox.add_label("work"), "Label_1");
    let inbox = hex(mailbox.insert(
        mail(1, ""),
        labels(&["INBOX", "UNREAD"]),
        86_400_000,
        Threading::Headers,
    ));
    let filed = hex(mailbox.insert(
        mail(2, ""),
        labels(&["Label_1"]),
        2 * 86_400_000,
        Threading::Headers,
    ));
    let spam = hex(mailbox.insert(
        mail(3, ""),
        labels(&["SPAM"]),
        3 * 86_400_000,
        Threading::Headers,
    ));
    let binned = hex(mailbox.insert(
        mail(4, ""),
        labels(&["INBOX"]),
        4 * 86_400_000,
        Threading::Headers,
    ));
    mailbox.trash(&binned).unwrap();

    let by_labels = |label_ids: &[&str]| {
        ids(&list(
            &mailbox,
            ListParams {
                label_ids: labels(label_ids),
                ..ListParams::default()
            },
        ))
    };
    let by_q = |q: &str| {
        ids(&list(
            &mailbox,
            ListParams {
                q: Some(q.to_owned()),
                ..ListParams::default()
            },
        ))
    };
    assert_eq!(by_labels(&[]), vec![filed.clone(), inbox.clone()]);
    assert_eq!(by_labels(&["INBOX", "UNREAD"]), vec![inbox.clone()]);
    assert_eq!(by_labels(&["TRASH"]), vec![binned.clone()]);
    assert_eq!(by_q("label:work"), vec![filed.clone()]);
    assert_eq!(by_q("in:spam"), vec![spam.clone()]);
    assert_eq!(by_q("after:1970/01/03"), vec![filed.clone()]);
    assert_eq!(by_q("before:172800 is:unread"), vec![inbox.clone()]);
    assert_eq!(by_q("rfc822msgid:m2@example.com"), vec![filed.clone()]);
    assert_eq!(by_q("rfc822msgid:<m1@example.com>"), vec![inbox.clone()]);
    assert_eq!(by_q("in:anywhere").len(), 4);
    let everything = list(
        &mailbox,
        ListParams {
            include_spam_trash: true,
            ..ListParams::default()
        },
    );
    assert_eq!(ids(&everything), vec![binned, spam, filed, inbox]);

    let unsupported = mailbox.list(&ListParams {
        q: Some("from:bob".into()),
        max_results: 10,
        ..ListParams::default()
    });
    assert_eq!(unsupported.unwrap_err().reason, "invalidArgument");
    let unknown = mailbox.list(&ListParams {
        label_ids: labels(&["Label_9"]),
        max_results: 10,
        ..ListParams::default()
    });
    assert_eq!(unknown.unwrap_err().status, 400);
}

#[test]
fn send_keeps_a_copy_and_checks_the_thread() {
    let mut mailbox = Mailbox::new("ann@example.com");
    let first = hex(mailbox.insert(mail(1, ""), labels(&["INBOX"]), 1_000, Threading::Headers));
    let sent = mailbox
        .send(
            mail(2, "In-Reply-To: <m1@example.com>\r\n"),
            Some(&first),
            2_000,
        )
        .unwrap();
    assert_eq!(sent["threadId"], first);
    assert_eq!(sent["labelIds"], json!(["SENT"]));
    // Without threadId a sent reply starts a thread of its own.
    let alone = mailbox
        .send(mail(3, "In-Reply-To: <m1@example.com>\r\n"), None, 3_000)
        .unwrap();
    assert_eq!(alone["threadId"], alone["id"]);
    assert_eq!(
        mailbox
            .send(mail(4, ""), Some("00000000000000aa"), 4_000)
            .unwrap_err()
            .status,
        404
    );
    assert_eq!(mailbox.sent().len(), 2);
    assert_eq!(
        mailbox.sent()[0].raw,
        mail(2, "In-Reply-To: <m1@example.com>\r\n")
    );
}

#[test]
fn get_formats() {
    let mut mailbox = Mailbox::new("ann@example.com");
    let raw = mail(1, "");
    let id = hex(mailbox.insert(raw.clone(), labels(&["INBOX"]), 1_234, Threading::Headers));
    let minimal = mailbox.get(&id, Format::Minimal, &[]).unwrap();
    assert_eq!(minimal["internalDate"], "1234");
    assert_eq!(minimal["sizeEstimate"], raw.len());
    assert_eq!(minimal["snippet"], "body 1");
    assert_eq!(minimal["historyId"], mailbox.history_id().to_string());
    assert!(minimal.get("payload").is_none() && minimal.get("raw").is_none());
    let full = mailbox.get(&id, Format::Raw, &[]).unwrap();
    let decoded = base64::engine::general_purpose::URL_SAFE
        .decode(full["raw"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, raw);
    let metadata = mailbox
        .get(&id, Format::Metadata, &["Subject".to_owned()])
        .unwrap();
    assert_eq!(
        metadata["payload"]["headers"],
        json!([{ "name": "Subject", "value": "note 1" }])
    );
    assert_eq!(
        mailbox
            .get("0000000000000001", Format::Raw, &[])
            .unwrap_err()
            .status,
        404
    );
    assert_eq!(
        mailbox
            .get("not-an-id", Format::Raw, &[])
            .unwrap_err()
            .status,
        404
    );
}
