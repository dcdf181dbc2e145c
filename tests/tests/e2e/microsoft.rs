//! Microsoft accounts end to end: OAuth through Mailroom's endpoints and the fake identity
//! platform's with each tenant form, the Graph connector syncing mail folders by delta
//! rounds with immutable ids, changes both ways, sending, the token lifecycle, throttling.

use crate::completeness::refetches_of;
use mailroom_tests::mailbox::{mail, ms_days_ago};
use mailroom_tests::microsoft::{ANN, Consent, Microsoft, Options, User, work_user};
use mailroom_tests::store::lose_messages;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

async fn subjects(ms: &Microsoft, account: &str, filter: &str) -> BTreeSet<String> {
    ms.mailroom
        .messages(account, filter)
        .await
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn in_folder(ms: &Microsoft, account: &str, name: &str) -> BTreeSet<String> {
    let folder = ms.mailroom.folder_id(account, name).await;
    subjects(ms, account, &format!("&folder={folder}")).await
}

async fn message_with(ms: &Microsoft, account: &str, subject: &str) -> Value {
    ms.mailroom
        .messages(account, "")
        .await
        .into_iter()
        .find(|m| m["subject"] == subject)
        .unwrap_or_else(|| panic!("no message {subject}"))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The immutable id of `upn`'s message with this subject.
fn graph_id(ms: &Microsoft, upn: &str, subject: &str) -> String {
    ms.fake
        .messages(upn)
        .into_iter()
        .find(|m| m.subject.as_deref() == Some(subject))
        .unwrap_or_else(|| panic!("no message {subject} in Outlook"))
        .id
}

fn calls(ms: &Microsoft, route: &str) -> u64 {
    ms.fake.stats().by_route.get(route).copied().unwrap_or(0)
}

const DELTA: &str = "GET /me/mailFolders/{id}/messages/delta";

/// Fills `upn`'s mailbox: five messages in the Inbox from 0 to 200 days old, one in
/// `Inbox/Deals`, one each in Deleted Items, Junk Email, a hidden folder and the Outbox.
fn fill(ms: &Microsoft, upn: &str) {
    let inbox = ms.fake.folder_id(upn, "inbox");
    for days in [0, 20, 45, 100, 200] {
        let raw = mail(
            &format!("d{days}@example.test"),
            &format!("{days} days"),
            "Carol <carol@example.test>",
            upn,
            days,
        );
        ms.fake.insert(upn, &inbox, &raw, ms_days_ago(days), false);
    }
    let deals = ms.fake.add_folder(upn, Some(&inbox), "Deals", false);
    let deal = mail("deal@example.test", "deal", "dan@acme.test", upn, 1);
    ms.fake.insert(upn, &deals, &deal, ms_days_ago(1), true);
    for (folder, subject) in [
        (ms.fake.folder_id(upn, "deleteditems"), "trashed"),
        (ms.fake.folder_id(upn, "junkemail"), "spam"),
        (ms.fake.folder_id(upn, "outbox"), "outgoing"),
        (ms.fake.add_folder(upn, None, "Hidden", true), "hidden"),
    ] {
        let raw = mail(
            &format!("{subject}@example.test"),
            subject,
            "x@example.test",
            upn,
            1,
        );
        ms.fake.insert(upn, &folder, &raw, ms_days_ago(1), false);
    }
}

/// A fake Microsoft with ann's mailbox filled and connected from `sync_from`.
async fn connected(options: Options, sync_from: &str) -> (Microsoft, String) {
    let ms = Microsoft::start(options).await;
    fill(&ms, ANN);
    let account = ms.connect(sync_from).await;
    (ms, account)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_signs_in_with_each_tenant_form_and_takes_its_address_from_graph() {
    let tenant_id = Options::default().tenant_id;
    for tenant in ["common", "organizations", tenant_id.as_str()] {
        let ms = Microsoft::start_with(Options::default(), tenant, |_| {}).await;
        assert_eq!(ms.fake.tenant_id(), tenant_id);
        let connector = ms.mailroom.get("/v1/connectors/microsoft").await;
        assert_eq!(connector.body["auth"], "oauth2", "{}", connector.body);
        assert_eq!(connector.body["configured"], true, "{}", connector.body);
        let url = ms
            .start_sign_in(json!({"kind": "personal", "sync_from": "now"}))
            .await;
        for part in [
            format!("/{tenant}/oauth2/v2.0/authorize?"),
            "scope=offline_access+Mail.ReadWrite+Mail.Send+User.Read".into(),
            "code_challenge_method=S256".into(),
        ] {
            assert!(url.contains(&part), "{url} lacks {part}");
        }
        let created = ms.callback(&ms.authorize(&url).await).await;
        assert_eq!(
            created.status,
            StatusCode::CREATED,
            "{tenant}: {}",
            created.body
        );
        assert_eq!(created.body["email"], ANN);
        assert_eq!(created.body["connector"], "microsoft");
        ms.mailroom.stop().await;
    }

    // An Outlook.com account without an address of its own in `mail`: its user principal
    // name is the address.
    let ms = Microsoft::start_with(Options::default(), "consumers", |_| {}).await;
    ms.fake.add_user(User {
        upn: "bob@outlook.test".into(),
        mail: None,
        display_name: "Bob".into(),
        personal: true,
    });
    let created = ms
        .sign_in(json!({"kind": "personal", "sync_from": "now"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["email"], "bob@outlook.test");

    // The person declines.
    ms.fake.set_consent("bob@outlook.test", Consent::Deny);
    let declined = ms
        .sign_in(json!({"kind": "personal", "sync_from": "now"}))
        .await;
    assert_eq!(
        declined.status,
        StatusCode::BAD_REQUEST,
        "{}",
        declined.body
    );
    assert_eq!(declined.body["error"]["code"], "oauth_denied");
    ms.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_sync_from_choice_brings_mail_from_its_date_with_folders_and_roles() {
    let ms = Microsoft::start(Options::default()).await;
    let choices = [
        ("now", vec![]),
        ("1_month", vec!["0 days", "20 days"]),
        ("3_months", vec!["0 days", "20 days", "45 days"]),
        ("6_months", vec!["0 days", "20 days", "45 days", "100 days"]),
    ];
    for (index, (choice, expected)) in choices.into_iter().enumerate() {
        let upn = format!("user{index}@contoso.test");
        // The last account added is the one that signs in.
        ms.fake.add_user(work_user(&upn));
        fill(&ms, &upn);
        ms.fake.reset_stats();
        let account = ms.connect(choice).await;
        assert_eq!(
            in_folder(&ms, &account, "Inbox").await,
            set(&expected),
            "{choice}"
        );
        let deals = if choice == "now" {
            vec![]
        } else {
            vec!["deal"]
        };
        assert_eq!(in_folder(&ms, &account, "Inbox/Deals").await, set(&deals));

        // Deleted Items and Junk Email are not synced at first; hidden folders, the Outbox
        // and Sync Issues are not folders at all.
        let folders = ms
            .mailroom
            .get(&format!("/v1/accounts/{account}/folders"))
            .await;
        let listed: BTreeSet<(String, String)> = folders.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let role = f["role"].as_str().unwrap_or("-").to_owned();
                (f["name"].as_str().unwrap().to_owned(), role)
            })
            .collect();
        let expected_folders: BTreeSet<(String, String)> = [
            ("Inbox", "inbox"),
            ("Inbox/Deals", "-"),
            ("Sent Items", "sent"),
            ("Drafts", "drafts"),
            ("Deleted Items", "trash"),
            ("Junk Email", "spam"),
            ("Archive", "archive"),
            ("Conversation History", "-"),
        ]
        .iter()
        .map(|(n, r)| (n.to_string(), r.to_string()))
        .collect();
        assert_eq!(listed, expected_folders, "{}", folders.body);
        for f in folders.body["items"].as_array().unwrap() {
            let first_sync = !matches!(f["role"].as_str(), Some("trash" | "spam"));
            assert_eq!(f["active"], first_sync, "{f}");
        }
        let all = subjects(&ms, &account, "").await;
        for absent in ["trashed", "spam", "hidden", "outgoing"] {
            assert!(!all.contains(absent), "{absent} in {all:?}");
        }
        // Each message downloaded once; every call of the connector asks for immutable ids
        // (the one without is the host's `GET /me` at sign-in, which names no message).
        let stats = ms.fake.stats();
        assert_eq!(stats.value_downloads, all.len() as u64, "{stats:?}");
        assert_eq!(stats.without_immutable_prefer, 1, "{stats:?}");
        assert_eq!(stats.by_route["GET /me"], 1, "{stats:?}");
        assert!(stats.max_in_flight <= 4, "{stats:?}");
    }
    ms.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_made_in_outlook_arrive_and_a_move_keeps_the_message_without_a_download() {
    let (ms, account) = connected(Options::default(), "1_month").await;
    let moved_before = message_with(&ms, &account, "20 days").await;
    let deals = ms.fake.folder_id(ANN, "inbox");
    let deals = ms
        .fake
        .messages(ANN)
        .into_iter()
        .find(|m| m.subject.as_deref() == Some("deal"))
        .map_or(deals, |m| m.folder_id);

    // Read and flagged in Outlook; moved to Deals; deleted; and new mail.
    let zero = graph_id(&ms, ANN, "0 days");
    ms.fake.set_read(ANN, &zero, true);
    ms.fake.set_flagged(ANN, &zero, true);
    ms.fake.move_to(ANN, &graph_id(&ms, ANN, "20 days"), &deals);
    ms.fake.delete(ANN, &graph_id(&ms, ANN, "deal"));
    let fresh = mail("new@example.test", "fresh", "eve@example.test", ANN, 0);
    let inbox = ms.fake.folder_id(ANN, "inbox");
    ms.fake.insert(ANN, &inbox, &fresh, ms_days_ago(0), false);
    ms.fake.reset_stats();
    ms.mailroom.sync(&account).await;

    assert_eq!(
        in_folder(&ms, &account, "Inbox").await,
        set(&["0 days", "fresh"])
    );
    assert_eq!(
        in_folder(&ms, &account, "Inbox/Deals").await,
        set(&["20 days"])
    );
    let read = message_with(&ms, &account, "0 days").await;
    assert_eq!(
        (&read["seen"], &read["flagged"]),
        (&json!(true), &json!(true))
    );
    // The moved message is the same message: same id, records and all.
    let moved = message_with(&ms, &account, "20 days").await;
    assert_eq!(moved["id"], moved_before["id"]);
    assert_eq!(moved["folder_ids"].as_array().unwrap().len(), 1, "{moved}");
    assert!(!subjects(&ms, &account, "").await.contains("deal"));
    let stats = ms.fake.stats();
    // Only the new message was downloaded; one delta call per active folder.
    assert_eq!(stats.value_downloads, 1, "{stats:?}");
    let active = ms
        .mailroom
        .get(&format!("/v1/accounts/{account}/folders"))
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["active"] == true)
        .count() as u64;
    assert_eq!(calls(&ms, DELTA), active, "{stats:?}");
    assert_eq!(stats.without_immutable_prefer, 0, "{stats:?}");

    // Deleted for good in Outlook.
    ms.fake.purge(ANN, &zero);
    ms.mailroom.sync(&account).await;
    assert!(!subjects(&ms, &account, "").await.contains("0 days"));
    ms.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_user_does_in_mailroom_reaches_outlook() {
    let (ms, account) = connected(Options::default(), "1_month").await;
    let stored = |subject: &str| {
        ms.fake
            .message(ANN, &graph_id(&ms, ANN, subject))
            .unwrap_or_else(|| panic!("{subject} is gone from Outlook"))
    };
    let deals_in_outlook = stored("deal").folder_id;

    let read = message_with(&ms, &account, "0 days").await;
    let changed = ms
        .mailroom
        .call(
            Method::PATCH,
            &format!("/v1/messages/{}", read["id"].as_str().unwrap()),
            Some(json!({"seen": true, "flagged": true})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let deals = ms.mailroom.folder_id(&account, "Inbox/Deals").await;
    let moved = message_with(&ms, &account, "20 days").await;
    let answer = ms
        .mailroom
        .post(
            &format!("/v1/messages/{}/move", moved["id"].as_str().unwrap()),
            json!({"folder_id": deals}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let deleted = message_with(&ms, &account, "deal").await;
    let answer = ms
        .mailroom
        .call(
            Method::DELETE,
            &format!("/v1/messages/{}", deleted["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    ms.mailroom.sync(&account).await;

    let now = stored("0 days");
    assert!(now.is_read && now.flagged, "{now:?}");
    assert_eq!(stored("20 days").folder_id, deals_in_outlook);
    assert_eq!(
        stored("deal").folder_id,
        ms.fake.folder_id(ANN, "deleteditems")
    );
    // Unflagged again.
    let changed = ms
        .mailroom
        .call(
            Method::PATCH,
            &format!("/v1/messages/{}", read["id"].as_str().unwrap()),
            Some(json!({"flagged": false})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    ms.mailroom.sync(&account).await;
    assert!(!stored("0 days").flagged);

    // From Deleted Items, once it is synced, a deletion is for good.
    let folders = ms
        .mailroom
        .get(&format!("/v1/accounts/{account}/folders"))
        .await;
    let all: Vec<&str> = folders.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    let patched = ms
        .mailroom
        .call(
            Method::PATCH,
            &format!("/v1/accounts/{account}"),
            Some(json!({"active_folders": all})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    ms.mailroom.sync(&account).await;
    let trashed = message_with(&ms, &account, "deal").await;
    let answer = ms
        .mailroom
        .call(
            Method::DELETE,
            &format!("/v1/messages/{}", trashed["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    ms.mailroom.sync(&account).await;
    assert!(
        ms.fake
            .messages(ANN)
            .iter()
            .all(|m| m.subject.as_deref() != Some("deal")),
        "the message was deleted for good"
    );
    assert_eq!(calls(&ms, "POST /me/messages/{id}/permanentDelete"), 1);
    ms.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_goes_out_through_graph_in_its_thread_with_the_signature() {
    let (ms, account) = connected(Options::default(), "1_month").await;
    let original = message_with(&ms, &account, "20 days").await;
    ms.mailroom
        .reply_signed(&account, &original, "<p>Ann Admin, Sales</p>")
        .await;
    let out = ms.fake.sent(ANN);
    assert_eq!(out.len(), 1);
    let raw = String::from_utf8_lossy(&out[0]).to_string();
    assert!(raw.contains("In-Reply-To: <d20@example.test>"), "{raw}");
    assert!(raw.contains("References: <d20@example.test>"), "{raw}");
    assert!(raw.contains("Subject: Re: 20 days"), "{raw}");
    assert!(raw.contains("Ann Admin, Sales"), "{raw}");
    // A message larger than a Graph request can carry fails with the reason, sent nowhere.
    let attachment = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        vec![b'x'; 3 << 20],
    );
    let large = ms
        .mailroom
        .post(
            &format!("/v1/accounts/{account}/send"),
            json!({"to": [{"email": "carol@example.test"}], "subject": "large", "text": "See attached.",
                   "attachments": [{"filename": "big.bin", "content_type": "application/octet-stream",
                                    "content_base64": attachment}]}),
        )
        .await;
    assert_eq!(large.status, StatusCode::ACCEPTED, "{}", large.body);
    let failed = ms
        .mailroom
        .wait_for_outbox(large.body["outbox_id"].as_str().unwrap(), "failed")
        .await;
    assert!(failed.to_string().contains("at most 4 MiB"), "{failed}");
    assert_eq!(ms.fake.sent(ANN).len(), 1);
    // Graph filed the copy in Sent Items itself: Mailroom stored none.
    assert_eq!(calls(&ms, "POST /me/mailFolders/{id}/messages"), 0);
    ms.mailroom.sync(&account).await;
    assert_eq!(
        in_folder(&ms, &account, "Sent Items").await,
        set(&["Re: 20 days"])
    );
    ms.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_refreshed_with_rotation_and_a_revoked_grant_asks_to_sign_in_again() {
    let ms = Microsoft::start(Options {
        rotate_refresh_tokens: true,
        ..Options::default()
    })
    .await;
    fill(&ms, ANN);
    let account = ms.connect("1_month").await;
    let held = ms.mailroom.messages(&account, "").await.len();

    // Every refresh retires the refresh token before it: the second one works only if the
    // first refresh's token was stored.
    for _ in 0..2 {
        ms.fake.expire_access_tokens();
        let synced = ms.mailroom.sync(&account).await;
        assert_eq!(synced["state"], "active", "{synced}");
    }
    assert!(ms.fake.stats().token_requests >= 3, "{:?}", ms.fake.stats());

    ms.fake.revoke_grants(ANN);
    ms.fake.expire_access_tokens();
    let refused = ms
        .mailroom
        .sync_until_state(
            &account,
            "auth_required",
            std::time::Duration::from_secs(60),
        )
        .await;
    let reason = refused["state_reason"].as_str().unwrap();
    assert!(
        reason.contains("invalid_grant") && reason.contains("AADSTS"),
        "{reason}"
    );

    // Signing in again as the same mailbox brings the account back as it was.
    let back = ms.sign_in(json!({"account_id": account})).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert_eq!(back.body["id"], account.as_str());
    let synced = ms.mailroom.sync(&account).await;
    assert_eq!(synced["state"], "active", "{synced}");
    assert_eq!(ms.mailroom.messages(&account, "").await.len(), held);
    ms.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_delta_token_means_a_full_resync_without_duplicates_and_throttling_is_waited_out()
 {
    let (ms, account) = connected(Options::default(), "3_months").await;
    let before = ms.mailroom.messages(&account, "").await.len();
    ms.fake.expire_delta_tokens(ANN);
    let late = mail("late@example.test", "late", "eve@example.test", ANN, 0);
    let inbox = ms.fake.folder_id(ANN, "inbox");
    ms.fake.insert(ANN, &inbox, &late, ms_days_ago(0), false);
    ms.fake.reset_stats();
    ms.fake.fail_next(2, 429, Some(1));
    ms.mailroom.sync(&account).await;
    let after = ms.mailroom.messages(&account, "").await;
    assert_eq!(after.len(), before + 1);
    let distinct: BTreeSet<&str> = after.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(distinct.len(), after.len());
    let stats = ms.fake.stats();
    // Nothing already held was downloaded again.
    assert_eq!(stats.value_downloads, 1, "{stats:?}");
    assert_eq!(stats.throttled, 2, "{stats:?}");

    // A 503 with Retry-After is waited out too.
    ms.fake.fail_next(1, 503, Some(1));
    let synced = ms.mailroom.sync(&account).await;
    assert_eq!(synced["state"], "active", "{synced}");

    // Outlook's limit of 4 requests at once per mailbox, enforced: the sync keeps under it.
    let limited = Microsoft::start(Options {
        concurrent_requests: Some(4),
        ..Options::default()
    })
    .await;
    fill(&limited, ANN);
    let account = limited.connect("6_months").await;
    assert_eq!(limited.mailroom.messages(&account, "").await.len(), 5);
    let stats = limited.fake.stats();
    assert_eq!(stats.throttled, 0, "{stats:?}");
    assert!(stats.max_in_flight <= 4, "{stats:?}");
    limited.mailroom.stop().await;
    ms.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_end_where_their_bytes_do_and_a_large_message_travels_in_a_sink() {
    let ms = Microsoft::start_with(Options::default(), "common", |config| {
        config.sync.page_kib = 64;
        config.sync.page_messages = 50;
    })
    .await;
    let inbox = ms.fake.folder_id(ANN, "inbox");
    let mut originals = Vec::new();
    for i in 0..30 {
        // 10 KB each: a page of 64 KiB takes six, and its Graph page has more.
        let mut raw = mail(
            &format!("m{i}@example.test"),
            &format!("m{i}"),
            "x@example.test",
            ANN,
            1,
        );
        raw.extend(format!("{}\r\n", "0123456789".repeat(1000)).bytes());
        ms.fake
            .insert(ANN, &inbox, &raw, ms_days_ago(1) - i * 1000, false);
        originals.push((format!("m{i}"), raw));
    }
    let mut large = mail("large@example.test", "large", "x@example.test", ANN, 2);
    for _ in 0..3000 {
        large.extend(b"A line of a large message, over a hundred times the size of a page.\r\n");
    }
    ms.fake.insert(ANN, &inbox, &large, ms_days_ago(2), false);
    originals.push(("large".into(), large));
    let account = ms.connect("1_month").await;

    let held = ms.mailroom.messages(&account, "").await;
    assert_eq!(held.len(), originals.len());
    for (subject, raw) in &originals {
        let message = held
            .iter()
            .find(|m| m["subject"] == subject.as_str())
            .unwrap();
        let bytes = ms
            .mailroom
            .http()
            .get(ms.mailroom.url(&format!(
                "/v1/messages/{}/raw",
                message["id"].as_str().unwrap()
            )))
            .bearer_auth(mailroom_tests::mailroom::ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(bytes[..] == raw[..], "{subject} came back changed");
    }
    // Every message downloaded once, though pages ended in the middle of Graph's.
    let stats = ms.fake.stats();
    assert_eq!(stats.value_downloads, originals.len() as u64, "{stats:?}");
    assert!(stats.by_route[DELTA] > 6, "{stats:?}");
    ms.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_lost_behind_mailrooms_back_are_counted_missing_and_fetched_again() {
    // Every job counts, so that the second one's agreement is seen too.
    let mut ms = Microsoft::start_with(Options::default(), "common", |config| {
        config.sync.count_every_mins = 0;
    })
    .await;
    fill(&ms, ANN);
    let account = ms.connect("6_months").await;
    let api = &ms.mailroom;
    let before = subjects(&ms, &account, "").await;
    // Graph's count of each folder agrees with what Mailroom holds: nothing is fetched again.
    api.sync(&account).await;
    assert_eq!(refetches_of(api, "microsoft").await, 0.0);

    // Two messages of the Inbox vanish from the store, as if a page had been lost.
    let inbox = api.folder_id(&account, "Inbox").await;
    let lost: Vec<String> = api
        .messages(&account, &format!("&folder={inbox}"))
        .await
        .iter()
        .take(2)
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(lost.len(), 2);
    let account_id = account.clone();
    ms.mailroom
        .restart_after(|data| async move {
            lose_messages(&data, &account_id, &inbox, &lost, |state| state).await;
        })
        .await;
    ms.mailroom.sync(&account).await;

    // The count was two above what Mailroom held: the Inbox was synced again, and every
    // message is back.
    assert_eq!(subjects(&ms, &account, "").await, before);
    let api = &ms.mailroom;
    assert_eq!(refetches_of(api, "microsoft").await, 1.0);
    let folders = api.get(&format!("/v1/accounts/{account}/folders")).await;
    for folder in folders.body["items"].as_array().unwrap() {
        assert_eq!(folder["server_total"], Value::Null, "{folder}");
    }
    ms.mailroom.stop().await;
}
