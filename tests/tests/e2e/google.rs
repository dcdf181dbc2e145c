//! Google accounts end to end: OAuth through Mailroom's endpoints and the fake's, the Gmail
//! connector syncing labels as folders, changes both ways, sending, token lifecycle.

use crate::completeness::refetches_of;
use mailroom_tests::google::{ANN, Consent, Google, Options, mail, ms_days_ago};
use mailroom_tests::store::lose_messages;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

async fn subjects(google: &Google, account: &str, filter: &str) -> BTreeSet<String> {
    google
        .mailroom
        .messages(account, filter)
        .await
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn folder(google: &Google, account: &str, name: &str) -> String {
    google.mailroom.folder_id(account, name).await
}

/// A fake Google with ann's mailbox filled (see [`fill`]) and connected from `sync_from`.
async fn connected(options: Options, sync_from: &str) -> (Google, String) {
    let google = Google::start(options).await;
    fill(&google, ANN);
    let account = google.connect(sync_from).await;
    (google, account)
}

/// The Gmail id of ann's message with this subject.
fn gmail_id(google: &Google, subject: &str) -> String {
    google
        .fake
        .messages(ANN)
        .into_iter()
        .find(|m| String::from_utf8_lossy(&m.raw).contains(&format!("Subject: {subject}\r")))
        .unwrap_or_else(|| panic!("no message {subject} in Gmail"))
        .id
}

async fn message_with(google: &Google, account: &str, subject: &str) -> Value {
    google
        .mailroom
        .messages(account, "")
        .await
        .into_iter()
        .find(|m| m["subject"] == subject)
        .unwrap_or_else(|| panic!("no message {subject}"))
}

/// How many messages are on the timeline of the CRM's contact `crm-carol`.
async fn carol_timeline(google: &Google) -> usize {
    let items = google
        .mailroom
        .get("/v1/records/contacts/crm-carol/messages")
        .await;
    items.body["items"].as_array().map_or(0, Vec::len)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn count(google: &Google, method: &str) -> u64 {
    google
        .fake
        .stats()
        .by_method
        .get(method)
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_signs_in_with_google_and_takes_its_address_from_the_provider() {
    let google = Google::start(Options::default()).await;
    let connector = google.mailroom.get("/v1/connectors/google").await;
    assert_eq!(connector.body["auth"], "oauth2", "{}", connector.body);
    assert_eq!(connector.body["configured"], true, "{}", connector.body);
    assert_eq!(connector.body["servers"], json!([]), "{}", connector.body);

    let url = google
        .start_sign_in(json!({"kind": "personal", "sync_from": "now"}))
        .await;
    for part in [
        "scope=https%3A%2F%2Fmail.google.com%2F",
        "access_type=offline",
        "prompt=consent",
        "code_challenge_method=S256",
    ] {
        assert!(url.contains(part), "{url} lacks {part}");
    }
    let location = google.authorize(&url).await;
    let created = google.callback(&location).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["email"], ANN);
    assert_eq!(created.body["connector"], "google");
    // The state is single-use.
    let again = google.callback(&location).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert_eq!(again.body["error"]["code"], "oauth_state");
    // A made-up state is refused the same way.
    let forged = google
        .callback(
            &google
                .mailroom
                .url("/v1/oauth/callback?code=x&state=forged"),
        )
        .await;
    assert_eq!(
        forged.body["error"]["code"], "oauth_state",
        "{}",
        forged.body
    );

    // The user declines.
    google.fake.set_consent(Consent::Deny);
    let url = google
        .start_sign_in(json!({"kind": "personal", "sync_from": "now"}))
        .await;
    let declined = google.callback(&google.authorize(&url).await).await;
    assert_eq!(
        declined.status,
        StatusCode::BAD_REQUEST,
        "{}",
        declined.body
    );
    assert_eq!(declined.body["error"]["code"], "oauth_denied");

    // Accounts of an OAuth connector are not created with a password.
    let refused = google
        .mailroom
        .post(
            "/v1/accounts",
            json!({"connector": "google", "email": ANN, "password": "x", "kind": "personal", "sync_from": "now"}),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["error"]["field"], "connector");
    google.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_is_sent_to_the_crm_page_with_the_account_or_the_error() {
    let google = Google::start_with(Options::default(), |config| {
        config.oauth.return_url = Some("https://crm.example/settings/mail".into());
    })
    .await;
    let url = google
        .start_sign_in(json!({"kind": "personal", "sync_from": "now"}))
        .await;
    let location = google.authorize(&url).await;
    let landed = google.browser.client.get(&location).send().await.unwrap();
    assert_eq!(landed.status(), StatusCode::SEE_OTHER);
    let target = landed.headers()["location"].to_str().unwrap().to_owned();
    let accounts = google.mailroom.get("/v1/accounts").await;
    let id = accounts.body["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        target,
        format!("https://crm.example/settings/mail?account_id={id}")
    );

    google.fake.set_consent(Consent::Deny);
    let url = google
        .start_sign_in(json!({"kind": "personal", "sync_from": "now"}))
        .await;
    let location = google.authorize(&url).await;
    let landed = google.browser.client.get(&location).send().await.unwrap();
    assert_eq!(landed.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        landed.headers()["location"],
        "https://crm.example/settings/mail?error=oauth_denied"
    );
    google.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unconfigured_provider_is_listed_and_refused() {
    let mailroom = mailroom_tests::mailroom::Mailroom::start(|_| {}).await;
    let connector = mailroom.get("/v1/connectors/google").await;
    assert_eq!(connector.body["configured"], false, "{}", connector.body);
    let start = mailroom
        .post(
            "/v1/oauth/google/start",
            json!({"kind": "personal", "sync_from": "now"}),
        )
        .await;
    assert_eq!(start.status, StatusCode::CONFLICT, "{}", start.body);
    assert_eq!(start.body["error"]["code"], "not_configured");
    mailroom.stop().await;
}

/// Mail at 0, 20, 45, 100 and 200 days ago in the inbox, one in a user label, one in the
/// trash and one in spam.
fn fill(google: &Google, email: &str) {
    for days in [0, 20, 45, 100, 200] {
        let raw = mail(
            &format!("d{days}@example.test"),
            &format!("{days} days"),
            "Carol <carol@example.test>",
            email,
            days,
        );
        google
            .fake
            .insert(email, &raw, &["INBOX", "UNREAD"], ms_days_ago(days));
    }
    google.fake.add_label(email, "Clients/Acme");
    let labelled = mail("acme@example.test", "acme", "dan@acme.test", email, 1);
    google
        .fake
        .insert(email, &labelled, &["INBOX", "Clients/Acme"], ms_days_ago(1));
    let trashed = mail("trash@example.test", "trashed", "x@example.test", email, 1);
    google
        .fake
        .insert(email, &trashed, &["TRASH"], ms_days_ago(1));
    let spam = mail("spam@example.test", "spam", "x@example.test", email, 1);
    google.fake.insert(email, &spam, &["SPAM"], ms_days_ago(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_sync_from_choice_brings_mail_from_its_date_with_labels_as_folders() {
    let google = Google::start(Options::default()).await;
    let choices = [
        ("now", vec![]),
        ("1_month", vec!["0 days", "20 days", "acme"]),
        ("3_months", vec!["0 days", "20 days", "45 days", "acme"]),
        (
            "6_months",
            vec!["0 days", "20 days", "45 days", "100 days", "acme"],
        ),
    ];
    for (index, (choice, expected)) in choices.into_iter().enumerate() {
        let email = format!("user{index}@gmail.test");
        google.fake.add_user(&email);
        fill(&google, &email);
        google.fake.set_consent(Consent::Grant(email.clone()));
        google.fake.reset_stats();
        let account = google.connect(choice).await;
        let inbox = folder(&google, &account, "Inbox").await;
        assert_eq!(
            subjects(&google, &account, &format!("&folder={inbox}")).await,
            set(&expected),
            "{choice}"
        );
        // Trash and spam are not synced at first; no category or system label is a folder.
        let folders = google
            .mailroom
            .get(&format!("/v1/accounts/{account}/folders"))
            .await;
        let names: BTreeSet<String> = folders.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            set(&["Inbox", "Sent", "Drafts", "Spam", "Trash", "Clients/Acme"]),
            "{}",
            folders.body
        );
        for f in folders.body["items"].as_array().unwrap() {
            let first_sync = !matches!(f["role"].as_str(), Some("trash" | "spam"));
            assert_eq!(f["active"], first_sync, "{f}");
        }
        let all = subjects(&google, &account, "").await;
        assert!(!all.contains("trashed") && !all.contains("spam"), "{all:?}");
        if choice != "now" {
            // The labelled message is one message in two folders, fetched once.
            let acme = message_with(&google, &account, "acme").await;
            assert_eq!(acme["folder_ids"].as_array().unwrap().len(), 2, "{acme}");
            assert_eq!(google.fake.stats().raw_downloads, expected.len() as u64);
        }
    }
    google.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_made_in_gmail_arrive_at_the_next_sync_with_one_history_call() {
    let (google, account) = connected(Options::default(), "1_month").await;
    let acme_label = google.fake.add_label(ANN, "Clients/Acme");
    let id_of = |subject: &str| gmail_id(&google, subject);
    // Read and starred in Gmail; labelled; trashed; deleted for good; and new mail.
    google
        .fake
        .modify(ANN, &id_of("0 days"), &["STARRED"], &["UNREAD"]);
    google
        .fake
        .modify(ANN, &id_of("20 days"), &[&acme_label], &[]);
    google.fake.trash(ANN, &id_of("acme"));
    let fresh = mail("new@example.test", "fresh", "eve@example.test", ANN, 0);
    google
        .fake
        .insert(ANN, &fresh, &["INBOX", "UNREAD"], ms_days_ago(0));
    google.fake.reset_stats();
    google.mailroom.sync(&account).await;

    let inbox = folder(&google, &account, "Inbox").await;
    let acme = folder(&google, &account, "Clients/Acme").await;
    assert_eq!(
        subjects(&google, &account, &format!("&folder={inbox}")).await,
        set(&["0 days", "20 days", "fresh"])
    );
    assert_eq!(
        subjects(&google, &account, &format!("&folder={acme}")).await,
        set(&["20 days"])
    );
    let read = message_with(&google, &account, "0 days").await;
    assert_eq!(
        (read["seen"].clone(), read["flagged"].clone()),
        (json!(true), json!(true))
    );
    assert!(
        !subjects(&google, &account, "").await.contains("acme"),
        "a trashed message shows only in the trash, which is not synced"
    );
    assert_eq!(
        count(&google, "history.list"),
        1,
        "{:?}",
        google.fake.stats()
    );
    // Only the new message was downloaded; the labelled one was already held.
    assert_eq!(
        google.fake.stats().raw_downloads,
        1,
        "{:?}",
        google.fake.stats()
    );

    google.fake.delete(ANN, &id_of("0 days"));
    google.mailroom.sync(&account).await;
    assert!(!subjects(&google, &account, "").await.contains("0 days"));
    google.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_user_does_in_mailroom_reaches_gmail() {
    let (google, account) = connected(Options::default(), "1_month").await;
    let labels = |subject: &str| {
        google
            .fake
            .message(ANN, &gmail_id(&google, subject))
            .unwrap()
            .labels
    };

    let read = message_with(&google, &account, "0 days").await;
    let id = read["id"].as_str().unwrap();
    let changed = google
        .mailroom
        .call(
            Method::PATCH,
            &format!("/v1/messages/{id}"),
            Some(json!({"seen": true, "flagged": true})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let acme = folder(&google, &account, "Clients/Acme").await;
    let moved = message_with(&google, &account, "20 days").await;
    let moved_id = moved["id"].as_str().unwrap();
    let answer = google
        .mailroom
        .post(
            &format!("/v1/messages/{moved_id}/move"),
            json!({"folder_id": acme}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let deleted = message_with(&google, &account, "acme").await;
    let deleted_id = deleted["id"].as_str().unwrap();
    let answer = google
        .mailroom
        .call(Method::DELETE, &format!("/v1/messages/{deleted_id}"), None)
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    google.mailroom.sync(&account).await;

    let now = labels("0 days");
    assert!(
        now.contains(&"STARRED".into()) && !now.contains(&"UNREAD".into()),
        "{now:?}"
    );
    let now = labels("20 days");
    let acme_id = google.fake.add_label(ANN, "Clients/Acme");
    assert!(
        now.contains(&acme_id) && !now.contains(&"INBOX".into()),
        "{now:?}"
    );
    assert!(labels("acme").contains(&"TRASH".into()));
    google.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_goes_out_through_gmail_in_its_thread_with_the_signature() {
    let (google, account) = connected(Options::default(), "1_month").await;
    let original = message_with(&google, &account, "20 days").await;
    google
        .mailroom
        .reply_signed(&account, &original, "<p>Ann Admin, Sales</p>")
        .await;
    let out = google.fake.sent(ANN);
    assert_eq!(out.len(), 1);
    let raw = String::from_utf8_lossy(&out[0].raw).to_string();
    assert!(raw.contains("In-Reply-To: <d20@example.test>"), "{raw}");
    assert!(raw.contains("References: <d20@example.test>"), "{raw}");
    assert!(raw.contains("Subject: Re: 20 days"), "{raw}");
    assert!(raw.contains("Ann Admin, Sales"), "{raw}");
    let original = google.fake.message(ANN, &gmail_id(&google, "20 days"));
    let thread = original.unwrap().thread_id;
    assert_eq!(out[0].thread_id, thread);
    // Gmail filed the copy in Sent itself: no second copy was inserted.
    assert_eq!(count(&google, "messages.insert"), 0);
    google.mailroom.sync(&account).await;
    let sent_folder = folder(&google, &account, "Sent").await;
    assert_eq!(
        subjects(&google, &account, &format!("&folder={sent_folder}")).await,
        set(&["Re: 20 days"])
    );
    google.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_refreshed_and_a_revoked_grant_asks_to_sign_in_again() {
    let google = Google::start(Options {
        rotate_refresh_tokens: true,
        ..Options::default()
    })
    .await;
    fill(&google, ANN);
    let carol = google
        .mailroom
        .call(
            Method::PUT,
            "/v1/records/contacts/crm-carol",
            Some(json!({"name": "Carol", "emails": ["carol@example.test"]})),
        )
        .await;
    assert_eq!(carol.status, StatusCode::CREATED, "{}", carol.body);
    let account = google.connect("1_month").await;
    let held = google.mailroom.messages(&account, "").await.len();
    let filed = carol_timeline(&google).await;
    assert_eq!(
        filed, 2,
        "carol's two messages in the window are filed under her"
    );

    google.fake.expire_access_tokens();
    let synced = google.mailroom.sync(&account).await;
    assert_eq!(synced["state"], "active", "{synced}");

    google.fake.revoke_grants(ANN);
    let refused = google
        .mailroom
        .sync_until_state(
            &account,
            "auth_required",
            std::time::Duration::from_secs(60),
        )
        .await;
    let reason = refused["state_reason"].as_str().unwrap();
    assert!(reason.contains("invalid_grant"), "{reason}");

    // Signing in as someone else is refused; as the same mailbox, the account comes back.
    google.fake.add_user("other@gmail.test");
    google
        .fake
        .set_consent(Consent::Grant("other@gmail.test".into()));
    let mismatch = google.sign_in(json!({"account_id": account})).await;
    assert_eq!(
        mismatch.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        mismatch.body
    );
    assert_eq!(mismatch.body["error"]["code"], "account_mismatch");
    google.fake.set_consent(Consent::Grant(ANN.into()));
    let back = google.sign_in(json!({"account_id": account})).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert_eq!(back.body["id"], account.as_str());
    let synced = google.mailroom.sync(&account).await;
    assert_eq!(synced["state"], "active", "{synced}");
    assert_eq!(google.mailroom.messages(&account, "").await.len(), held);
    assert_eq!(carol_timeline(&google).await, filed);

    // No token the fake issued is in Mailroom's events or its data directory.
    let tokens = google.fake.tokens_issued();
    assert!(tokens.len() >= 4, "{tokens:?}");
    let events = google.mailroom.get("/v1/events?after=0").await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.body);
    let events = events.body.to_string();
    assert!(events.contains("account.state_changed"), "{events}");
    assert!(tokens.iter().all(|t| !events.contains(t.as_str())));
    let mut files = vec![google.mailroom.data_dir().to_owned()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for token in &tokens {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "a token is in {} in plain text",
                path.display()
            );
        }
    }
    google.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_history_means_a_full_resync_without_duplicates_and_rate_limits_are_waited_out() {
    let (google, account) = connected(Options::default(), "3_months").await;
    let before = google.mailroom.messages(&account, "").await.len();
    google.fake.forget_history(ANN);
    let fresh = mail("late@example.test", "late", "eve@example.test", ANN, 0);
    google
        .fake
        .insert(ANN, &fresh, &["INBOX", "UNREAD"], ms_days_ago(0));
    google.fake.reset_stats();
    google.fake.fail_next(2, 429, Some(1));
    google.mailroom.sync(&account).await;
    let after = google.mailroom.messages(&account, "").await;
    assert_eq!(after.len(), before + 1);
    let distinct: BTreeSet<&str> = after.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(distinct.len(), after.len());
    // Nothing already held was downloaded again.
    assert_eq!(
        google.fake.stats().raw_downloads,
        1,
        "{:?}",
        google.fake.stats()
    );
    assert_eq!(google.fake.stats().rate_limited, 2);
    google.mailroom.stop().await;
}

/// A folder state whose last check of its label is two hours older: the next job checks.
fn check_aged(state: Vec<u8>) -> Vec<u8> {
    let mut state: Value = serde_json::from_slice(&state).expect("a JSON folder state");
    if let Some(at) = state["c"].as_i64() {
        state["c"] = json!(at - 7200);
    }
    serde_json::to_vec(&state).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_lost_behind_mailrooms_back_come_back_at_the_next_check_of_their_label() {
    let (mut google, account) = connected(Options::default(), "1_month").await;
    let api = &google.mailroom;
    let before = subjects(&google, &account, "").await;
    let inbox = folder(&google, &account, "Inbox").await;
    let acme = folder(&google, &account, "Clients/Acme").await;
    // A job within the hour of the first: no label is listed, nothing is fetched.
    let downloads = google.fake.stats().raw_downloads;
    let lists = count(&google, "messages.list");
    api.sync(&account).await;
    assert_eq!(google.fake.stats().raw_downloads, downloads);
    assert_eq!(count(&google, "messages.list"), lists);

    // The inbox loses "20 days" (the window does not cover the inbox whole: older mail is
    // there) and Clients/Acme loses "acme" (which the window covers whole); an hour passes.
    let twenty = message_with(&google, &account, "20 days").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let labelled = message_with(&google, &account, "acme").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let account_id = account.clone();
    google
        .mailroom
        .restart_after(|data| async move {
            lose_messages(&data, &account_id, &inbox, &[twenty], check_aged).await;
            lose_messages(&data, &account_id, &acme, &[labelled], check_aged).await;
        })
        .await;
    google.mailroom.sync(&account).await;

    // The inbox's listing found "20 days" missing and fetched it; Clients/Acme's count was
    // one short, so the label was synced again and found "acme" held in the inbox. Every
    // message is back, and only the missing one was downloaded.
    let api = &google.mailroom;
    assert_eq!(subjects(&google, &account, "").await, before);
    assert_eq!(google.fake.stats().raw_downloads, downloads + 1);
    assert_eq!(refetches_of(api, "google").await, 1.0);
    let acme_message = message_with(&google, &account, "acme").await;
    assert_eq!(
        acme_message["folder_ids"].as_array().unwrap().len(),
        2,
        "{acme_message}"
    );
    google.mailroom.stop().await;
}
