//! Completeness: a folder that lost messages on the way is found by the next job, which
//! compares the server's count of the sync window with what Mailroom holds, and fetches the
//! folder again; a difference that outlasts that is shown on the folder and the account
//! until it heals.

use crate::metrics::{scrape, value};
use crate::webhooks::all_events;
use mailroom_tests::fakes::withholding_imap_proxy;
use mailroom_tests::imap::message;
use mailroom_tests::mailbox::{Setup, days_ago, rfc2822_days_ago};
use mailroom_tests::mailroom::{ADMIN_TOKEN, Api};
use mailroom_tests::servers::Options;
use mailroom_tests::store::lose_messages;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Appends one message per age (in days) to alice's INBOX, `gap-N@client.test` for age N.
async fn seed(setup: &Setup, ages: impl IntoIterator<Item = i64>) {
    let mut imap = setup.imap("alice").await;
    for age in ages {
        let raw = message(
            &format!("gap-{age}@client.test"),
            &format!("age {age}"),
            &rfc2822_days_ago(age),
            "Hello.",
        );
        imap.append("INBOX", "", &days_ago(age), &raw).await;
    }
    imap.logout().await;
}

/// The account's INBOX as `GET /v1/accounts/{id}/folders` shows it.
async fn inbox(api: &Api, account: &str) -> Value {
    let folders = api.get(&format!("/v1/accounts/{account}/folders")).await;
    folders.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["role"] == "inbox")
        .cloned()
        .expect("an inbox")
}

/// `connector`'s sample of `metric`, 0 when it has none yet.
pub(crate) async fn connector_metric(api: &Api, connector: &str, metric: &str) -> f64 {
    let scraped = scrape(api, Some(ADMIN_TOKEN)).await;
    value(&scraped, metric, &[("connector", connector)]).unwrap_or(0.0)
}

async fn imap_metric(api: &Api, metric: &str) -> f64 {
    connector_metric(api, "imap", metric).await
}

/// How many folders `connector`'s jobs fetched again for a gap.
pub(crate) async fn refetches_of(api: &Api, connector: &str) -> f64 {
    connector_metric(api, connector, "mailroom_sync_gap_refetches_total").await
}

async fn refetches(api: &Api) -> f64 {
    refetches_of(api, "imap").await
}

async fn subjects(api: &Api, account: &str) -> BTreeSet<String> {
    api.messages(account, "")
        .await
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_lost_behind_mailrooms_back_are_found_and_fetched_again_by_the_next_job() {
    let mut setup = Setup::start_configured(Options::default(), |config| {
        // Every job counts, so that the second one's agreement is seen too.
        config.sync.count_every_mins = 0;
    })
    .await;
    // Twenty messages inside the month, three before it: only the twenty are counted.
    seed(&setup, (0..20).chain([45, 60, 90])).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let account_id = account.clone();
    let api = &setup.mailroom;
    let before = subjects(api, &account).await;
    assert_eq!(before.len(), 20);
    // A sync with nothing new agrees with the server's count too: nothing is fetched again.
    api.sync(&account).await;
    let folder = inbox(api, &account).await;
    assert_eq!(
        (folder["total"].as_u64(), folder["server_total"].clone()),
        (Some(20), Value::Null)
    );
    assert_eq!(refetches(api).await, 0.0);

    // Five messages vanish from the store, the folder's progress untouched: as if a page had
    // been dropped. No sync alone would bring them back.
    let lost: Vec<String> = api
        .messages(&account, "")
        .await
        .iter()
        .take(5)
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let inbox_id = folder["id"].as_str().unwrap().to_owned();
    setup
        .mailroom
        .restart_after(|data| async move {
            lose_messages(&data, &account_id, &inbox_id, &lost, |state| state).await;
        })
        .await;
    let api = &setup.mailroom;
    api.sync(&account).await;

    // The next job saw the folder short of the server's count and fetched it again: every
    // message is back.
    assert_eq!(subjects(api, &account).await, before);
    let folder = inbox(api, &account).await;
    assert_eq!(
        (folder["total"].as_u64(), folder["server_total"].clone()),
        (Some(20), Value::Null)
    );
    assert_eq!(refetches(api).await, 1.0);
    let body = api.get(&format!("/v1/accounts/{account}")).await.body;
    assert_eq!(
        (body["state"].as_str(), body["state_reason"].as_str()),
        (Some("active"), None)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_the_server_will_not_deliver_is_a_gap_the_account_shows_until_it_heals() {
    let setup = Setup::start_configured(Options::default(), |config| {
        // Every job counts and may sync a folder again, so that healing shows at the next.
        config.sync.count_every_mins = 0;
        config.sync.gap_refetch_mins = 0;
    })
    .await;
    seed(&setup, 1..=10).await;
    // The server lists, searches and counts the fifth message but never hands out its content.
    let hidden = Arc::new(Mutex::new(Some("gap-5@client.test".to_owned())));
    let proxy = withholding_imap_proxy(setup.servers.imap_port(), hidden.clone()).await;
    let account = setup
        .connect(
            "alice",
            "1_month",
            json!({"imap": {"host": "127.0.0.1", "port": proxy, "encryption": "none"}}),
        )
        .await;
    let api = &setup.mailroom;

    // Looked at again, fetched again, still one short: the gap is reported.
    let subjects = setup.subjects(&account, "").await;
    let body = api.get(&format!("/v1/accounts/{account}")).await.body;
    assert_eq!(subjects.len(), 9, "{body}");
    assert!(!subjects.contains("age 5"));
    let folder = inbox(api, &account).await;
    assert_eq!(
        (folder["total"].as_u64(), folder["server_total"].as_u64()),
        (Some(9), Some(10))
    );
    let body = api.get(&format!("/v1/accounts/{account}")).await.body;
    assert_eq!(body["state"], "active", "{body}");
    let reason = body["state_reason"].as_str().expect("a reason").to_owned();
    assert!(reason.contains("missing from folder INBOX"), "{reason}");
    assert_eq!(imap_metric(api, "mailroom_sync_gap_messages").await, 1.0);
    // Once by each job so far (the one the creation started, the one the test asked for).
    let refetched = refetches(api).await;
    assert!(refetched >= 1.0, "{refetched}");

    // The server delivers the message again: the next job fetches the folder again and heals.
    *hidden.lock().unwrap() = None;
    api.sync(&account).await;
    assert!(setup.subjects(&account, "").await.contains("age 5"));
    let folder = inbox(api, &account).await;
    assert_eq!(
        (folder["total"].as_u64(), folder["server_total"].clone()),
        (Some(10), Value::Null)
    );
    let body = api.get(&format!("/v1/accounts/{account}")).await.body;
    assert_eq!(
        (body["state"].as_str(), body["state_reason"].as_str()),
        (Some("active"), None)
    );
    assert_eq!(imap_metric(api, "mailroom_sync_gap_messages").await, 0.0);
    assert_eq!(refetches(api).await, refetched + 1.0);

    // Each turn was an `account.state_changed` event: the gap with its reason, then the healing.
    let changes: Vec<Value> = all_events(api)
        .await
        .into_iter()
        .filter(|e| {
            e["type"] == "account.state_changed" && e["data"]["account_id"] == account.as_str()
        })
        .map(|e| e["data"].clone())
        .collect();
    let reported = changes
        .iter()
        .position(|d| d["reason"].as_str() == Some(reason.as_str()))
        .expect("the gap was announced");
    assert!(
        changes[reported + 1..]
            .iter()
            .any(|d| d["state"] == "active" && d["reason"].is_null()),
        "{changes:?}"
    );
}
