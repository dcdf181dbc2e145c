use serde_json::Value;

use super::*;

fn mailbox() -> Mailbox {
    Mailbox::new(
        User {
            upn: "ann@contoso.test".to_owned(),
            mail: Some("ann@contoso.test".to_owned()),
            display_name: "Ann".to_owned(),
            personal: false,
        },
        "0000".to_owned(),
    )
}

fn mail(n: u32) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.com>\r\nTo: ann@contoso.test\r\nSubject: note {n}\r\n\
         Message-ID: <n{n}@example.com>\r\nDate: Wed, 31 Jan 2024 09:30:00 +0000\r\n\r\nHello {n}\r\n"
    )
    .into_bytes()
}

fn arrive(mailbox: &mut Mailbox, folder: &str, n: u32) -> u64 {
    let folder = mailbox.well_known_folder(folder);
    mailbox.insert(
        folder,
        Arrival {
            raw: mail(n),
            received_ms: 1_700_000_000_000 + i64::from(n) * 1000,
            is_read: false,
            is_draft: false,
            now_ms: 1_700_000_000_000,
        },
    )
}

fn query(token: Option<&str>, page_size: usize, form: IdForm) -> DeltaQuery<'_> {
    DeltaQuery {
        token,
        filter: None,
        descending: false,
        select: Some(vec!["subject".to_owned(), "isRead".to_owned()]),
        page_size,
        form,
        restart_url: "https://127.0.0.1:1/v1.0/me/mailFolders/x/messages/delta",
    }
}

/// Every page of a round from `token`: the entries and the next round's token.
fn round(
    mailbox: &Mailbox,
    folder: u32,
    token: Option<String>,
    page_size: usize,
) -> (Vec<Value>, String) {
    let mut token = token;
    let mut entries = Vec::new();
    loop {
        let page = mailbox
            .delta(
                folder,
                &query(token.as_deref(), page_size, IdForm::Immutable),
            )
            .unwrap();
        assert!(page.value.len() <= page_size);
        entries.extend(page.value);
        match (page.skip_token, page.delta_token) {
            (Some(skip), None) => token = Some(skip),
            (None, Some(delta)) => return (entries, delta),
            other => panic!("a page has one link: {other:?}"),
        }
    }
}

#[test]
fn ids_resolve_and_regular_ids_go_stale_on_a_move() {
    let mut mailbox = mailbox();
    let number = arrive(&mut mailbox, "inbox", 1);
    let immutable = mailbox.immutable_id(number);
    let regular = mailbox.regular_id(&mailbox.messages[&number]);
    assert_ne!(immutable, regular);
    assert_eq!(mailbox.resolve_message(&immutable), Ok(number));
    assert_eq!(mailbox.resolve_message(&regular), Ok(number));

    let archive = mailbox.well_known_folder("archive");
    mailbox.move_to(number, archive, 1);
    assert_eq!(mailbox.resolve_message(&immutable), Ok(number));
    assert_eq!(mailbox.resolve_message(&regular).unwrap_err().status, 404);
    let moved = mailbox.regular_id(&mailbox.messages[&number]);
    assert_ne!(moved, regular);
    assert_eq!(mailbox.resolve_message(&moved), Ok(number));

    assert_eq!(mailbox.resolve_message("nonsense").unwrap_err().status, 400);
    let other = self::mailbox();
    let foreign = other.immutable_id(number);
    assert_eq!(mailbox.resolve_message(&foreign).unwrap_err().status, 404);
    mailbox.purge(number);
    assert_eq!(mailbox.resolve_message(&immutable).unwrap_err().status, 404);
}

#[test]
fn folders_resolve_by_id_and_well_known_name() {
    let mut mailbox = mailbox();
    let inbox = mailbox.well_known_folder("inbox");
    assert_eq!(mailbox.resolve_folder("Inbox"), Ok(inbox));
    assert_eq!(mailbox.resolve_folder(&mailbox.folder_id(inbox)), Ok(inbox));
    let root = mailbox.well_known_folder("msgfolderroot");
    let names: Vec<String> = mailbox
        .child_folders(root, false)
        .into_iter()
        .map(|n| mailbox.folders[&n].name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "Archive",
            "Conversation History",
            "Deleted Items",
            "Drafts",
            "Inbox",
            "Junk Email",
            "Outbox",
            "Sent Items",
            "Sync Issues"
        ]
    );
    let hidden = mailbox.add_folder(None, "Secret", true);
    assert_eq!(mailbox.add_folder(None, "secret", true), hidden);
    assert_eq!(mailbox.child_folders(root, false).len(), 9);
    assert_eq!(mailbox.child_folders(root, true).len(), 10);
    let sync = mailbox.well_known_folder("syncissues");
    assert_eq!(mailbox.folder_json(sync)["childFolderCount"], 3);
    arrive(&mut mailbox, "inbox", 1);
    let inbox_json = mailbox.folder_json(inbox);
    assert_eq!(inbox_json["totalItemCount"], 1);
    assert_eq!(inbox_json["unreadItemCount"], 1);
    assert_eq!(inbox_json["parentFolderId"], mailbox.folder_id(root));
}

#[test]
fn messages_render_what_graph_shows() {
    let mut mailbox = mailbox();
    let number = arrive(&mut mailbox, "inbox", 7);
    let full = mailbox.message_json(number, IdForm::Regular, None);
    assert_eq!(full["subject"], "note 7");
    assert_eq!(full["internetMessageId"], "<n7@example.com>");
    assert_eq!(full["from"]["emailAddress"]["address"], "bob@example.com");
    assert_eq!(full["from"]["emailAddress"]["name"], "Bob");
    assert_eq!(
        full["toRecipients"][0]["emailAddress"]["address"],
        "ann@contoso.test"
    );
    assert_eq!(full["sentDateTime"], "2024-01-31T09:30:00Z");
    assert_eq!(full["receivedDateTime"], "2023-11-14T22:13:27Z");
    assert_eq!(full["flag"]["flagStatus"], "notFlagged");
    assert_eq!(full["isRead"], false);
    assert_eq!(full["bodyPreview"], "Hello 7");
    assert_eq!(full["body"]["contentType"], "text");
    assert_eq!(
        full["parentFolderId"],
        mailbox.folder_id(mailbox.well_known_folder("inbox"))
    );
    let select = ["ISREAD".to_owned()];
    let some = mailbox.message_json(number, IdForm::Immutable, Some(&select));
    let keys: Vec<&str> = some
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["@odata.etag", "id", "isRead"]);
    assert_eq!(some["id"], mailbox.immutable_id(number));
}

#[test]
fn a_first_round_pages_every_message_then_later_rounds_only_changes() {
    let mut mailbox = mailbox();
    let inbox = mailbox.well_known_folder("inbox");
    let numbers: Vec<u64> = (1..=5).map(|n| arrive(&mut mailbox, "inbox", n)).collect();
    arrive(&mut mailbox, "archive", 9);

    let (first, delta) = round(&mailbox, inbox, None, 2);
    let subjects: Vec<&str> = first
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["note 1", "note 2", "note 3", "note 4", "note 5"]);
    assert!(
        first
            .iter()
            .all(|e| e["@odata.type"] == "#microsoft.graph.message")
    );

    // Nothing changed: an empty round.
    let (none, delta) = round(&mailbox, inbox, Some(delta), 2);
    assert!(none.is_empty());

    let regular_before_move = mailbox.regular_id(&mailbox.messages[&numbers[2]]);
    mailbox.update(numbers[0], Some(true), None, None, 1);
    let archive = mailbox.well_known_folder("archive");
    mailbox.move_to(numbers[2], archive, 1);
    mailbox.purge(numbers[3]);
    let newcomer = arrive(&mut mailbox, "inbox", 6);
    mailbox.update(numbers[1], Some(false), None, None, 1);

    let (changes, delta) = round(&mailbox, inbox, Some(delta.clone()), 10);
    let ids: Vec<(String, bool)> = changes
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e.get("@removed").is_some(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            (mailbox.immutable_id(numbers[0]), false),
            (mailbox.immutable_id(numbers[2]), true),
            (mailbox.immutable_id(numbers[3]), true),
            (mailbox.immutable_id(newcomer), false),
        ]
    );
    assert_eq!(changes[0]["isRead"], true);
    assert_eq!(changes[1]["@removed"]["reason"], "deleted");

    // Without the immutable preference, a removal carries the id the client knew.
    let regular = mailbox
        .delta(inbox, &query(Some(&delta), 10, IdForm::Regular))
        .unwrap();
    assert!(regular.value.is_empty());

    // The archive's next round sees the moved message under its new id.
    let (archived, _) = round(&mailbox, archive, None, 10);
    assert_eq!(archived.len(), 2);
    let _ = regular_before_move;
}

#[test]
fn removals_use_the_regular_id_the_folder_had() {
    let mut mailbox = mailbox();
    let inbox = mailbox.well_known_folder("inbox");
    let number = arrive(&mut mailbox, "inbox", 1);
    let known = mailbox.regular_id(&mailbox.messages[&number]);
    let page = mailbox
        .delta(inbox, &query(None, 10, IdForm::Regular))
        .unwrap();
    assert_eq!(page.value[0]["id"], known);
    let deleted_items = mailbox.well_known_folder("deleteditems");
    mailbox.move_to(number, deleted_items, 1);
    let next = mailbox
        .delta(
            inbox,
            &query(page.delta_token.as_deref(), 10, IdForm::Regular),
        )
        .unwrap();
    assert_eq!(next.value[0]["id"], known);
    assert_eq!(next.value[0]["@removed"]["reason"], "deleted");
}

#[test]
fn links_answer_the_same_when_asked_again_and_a_round_is_a_snapshot() {
    let mut mailbox = mailbox();
    let inbox = mailbox.well_known_folder("inbox");
    for n in 1..=3 {
        arrive(&mut mailbox, "inbox", n);
    }
    let first = mailbox
        .delta(inbox, &query(None, 2, IdForm::Immutable))
        .unwrap();
    let skip = first.skip_token.unwrap();
    // A message arriving mid-round belongs to the next round.
    let late = arrive(&mut mailbox, "inbox", 4);
    let second = mailbox
        .delta(inbox, &query(Some(&skip), 2, IdForm::Immutable))
        .unwrap();
    let again = mailbox
        .delta(inbox, &query(Some(&skip), 2, IdForm::Immutable))
        .unwrap();
    assert_eq!(second.value, again.value);
    assert_eq!(second.value.len(), 1);
    assert_eq!(second.value[0]["subject"], "note 3");
    let delta = second.delta_token.unwrap();
    let next = mailbox
        .delta(inbox, &query(Some(&delta), 10, IdForm::Immutable))
        .unwrap();
    assert_eq!(next.value.len(), 1);
    assert_eq!(next.value[0]["id"], mailbox.immutable_id(late));
    let repeat = mailbox
        .delta(inbox, &query(Some(&delta), 10, IdForm::Immutable))
        .unwrap();
    assert_eq!(repeat.value, next.value);
}

#[test]
fn filters_and_newest_first() {
    let mut mailbox = mailbox();
    let inbox = mailbox.well_known_folder("inbox");
    for n in 1..=5 {
        arrive(&mut mailbox, "inbox", n);
    }
    let ms = mailbox.messages.values().nth(2).unwrap().received_ms;
    let mut query = query(None, 2, IdForm::Immutable);
    query.filter = Some(crate::odata::ReceivedFilter { strict: false, ms });
    query.descending = true;
    let mut subjects = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = mailbox
            .delta(
                inbox,
                &DeltaQuery {
                    token: token.as_deref(),
                    select: query.select.clone(),
                    ..query
                },
            )
            .unwrap();
        subjects.extend(
            page.value
                .iter()
                .map(|e| e["subject"].as_str().unwrap().to_owned()),
        );
        match page.skip_token {
            Some(skip) => token = Some(skip),
            None => break,
        }
    }
    assert_eq!(subjects, ["note 5", "note 4", "note 3"]);
}

#[test]
fn expired_tokens_are_gone_with_a_place_to_start_over() {
    let mut mailbox = mailbox();
    let inbox = mailbox.well_known_folder("inbox");
    arrive(&mut mailbox, "inbox", 1);
    let page = mailbox
        .delta(inbox, &query(None, 10, IdForm::Immutable))
        .unwrap();
    let delta = page.delta_token.unwrap();
    mailbox.expire_delta_tokens();
    let error = mailbox
        .delta(inbox, &query(Some(&delta), 10, IdForm::Immutable))
        .unwrap_err();
    assert_eq!((error.status, error.code), (410, "syncStateNotFound"));
    assert_eq!(
        error.location.as_deref(),
        Some("https://127.0.0.1:1/v1.0/me/mailFolders/x/messages/delta?%24select=subject%2CisRead")
    );
    assert!(
        mailbox
            .delta(inbox, &query(None, 10, IdForm::Immutable))
            .is_ok()
    );
    let garbage = mailbox
        .delta(inbox, &query(Some("zz"), 10, IdForm::Immutable))
        .unwrap_err();
    assert_eq!(garbage.status, 400);
    let archive = mailbox.well_known_folder("archive");
    let elsewhere = mailbox
        .delta(archive, &query(Some(&delta), 10, IdForm::Immutable))
        .unwrap_err();
    assert_eq!(elsewhere.status, 400);
}

#[test]
fn out_and_back_again_is_a_new_id_only_under_regular_ids() {
    let mut mailbox = mailbox();
    let inbox = mailbox.well_known_folder("inbox");
    let archive = mailbox.well_known_folder("archive");
    let number = arrive(&mut mailbox, "inbox", 1);
    let known = mailbox.regular_id(&mailbox.messages[&number]);
    let regular = mailbox
        .delta(inbox, &query(None, 10, IdForm::Regular))
        .unwrap();
    let immutable = mailbox
        .delta(inbox, &query(None, 10, IdForm::Immutable))
        .unwrap();
    mailbox.move_to(number, archive, 1);
    mailbox.move_to(number, inbox, 2);

    let next = mailbox
        .delta(
            inbox,
            &query(regular.delta_token.as_deref(), 10, IdForm::Regular),
        )
        .unwrap();
    let current = mailbox.regular_id(&mailbox.messages[&number]);
    let ids: Vec<(&str, bool)> = next
        .value
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e.get("@removed").is_some()))
        .collect();
    assert_eq!(ids, [(known.as_str(), true), (current.as_str(), false)]);

    let next = mailbox
        .delta(
            inbox,
            &query(immutable.delta_token.as_deref(), 10, IdForm::Immutable),
        )
        .unwrap();
    assert_eq!(next.value.len(), 1);
    assert_eq!(next.value[0]["id"], mailbox.immutable_id(number));
    assert!(next.value[0].get("@removed").is_none());
}
