//! Webhooks: every event reaches each endpoint that asked for it, signed the Standard
//! Webhooks way (checked with that project's own library), once and in order; an endpoint
//! that fails is retried with backoff and delays no other; a delivery that keeps failing
//! ends `failed` and can be retried; 410 Gone disables the endpoint; only admins and the
//! CRM's service manage them, and URLs and secrets are checked.

use mailroom_tests::mailbox::{Setup, days_ago, mail};
use mailroom_tests::mailroom::{Api, Mailroom, SERVICE_TOKEN};
use mailroom_tests::servers::Options;
use mailroom_tests::webhooks::{Received, Receiver, deliveries, verify};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// Registers an endpoint; returns its id and secret.
async fn register(api: &Api, url: &str, events: Value, secret: Option<&str>) -> (String, String) {
    let mut body = json!({"url": url, "events": events});
    if let Some(secret) = secret {
        body["secret"] = json!(secret);
    }
    let created = api.post("/v1/webhooks", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    (
        created.body["id"].as_str().unwrap().to_owned(),
        created.body["secret"].as_str().unwrap().to_owned(),
    )
}

/// Every event in the log, oldest first, as the CRM's service sees them.
pub(crate) async fn all_events(api: &Api) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let page = api
            .call_as(
                SERVICE_TOKEN,
                None,
                Method::GET,
                &format!("/v1/events?after={after}&limit=500"),
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let items = page.body["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return events;
        }
        after = page.body["next_cursor"].as_str().unwrap().to_owned();
        events.extend(items);
    }
}

/// Waits until the endpoint's delivery of event `seq` satisfies `done`; returns it.
async fn wait_for_delivery(
    api: &Api,
    webhook: &str,
    seq: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = deliveries(api, webhook)
            .await
            .into_iter()
            .find(|d| d["event_seq"] == seq);
        if let Some(delivery) = found.filter(|d| done(d)) {
            return delivery;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery of event {seq}: {:?}",
            deliveries(api, webhook).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks that `accepted` are exactly `events`, in order: each body the event it carries
/// under the id its headers give, each signature good under `secret`.
pub(crate) fn assert_carries(accepted: &[Received], events: &[Value], secret: &str) {
    let seqs = |values: Vec<&Value>| {
        values
            .iter()
            .map(|v| v["seq"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    let bodies: Vec<Value> = accepted.iter().map(Received::json).collect();
    assert_eq!(seqs(bodies.iter().collect()), seqs(events.iter().collect()));
    for ((delivery, body), event) in accepted.iter().zip(&bodies).zip(events) {
        verify(secret, delivery).unwrap_or_else(|e| panic!("event {}: {e}", event["seq"]));
        assert_eq!(body["id"], delivery.id().as_str());
        for field in ["type", "at", "data"] {
            assert_eq!(
                body[field], event[field],
                "{field} of event {}",
                event["seq"]
            );
        }
    }
}

fn seed(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            mail(
                &format!("hook-{i}@client.test"),
                &format!("hook {i}"),
                "dan@client.test",
                "alice@example.test",
                1,
            )
        })
        .collect()
}

async fn fill_inbox(setup: &Setup, count: usize) {
    let mut imap = setup.imap("alice").await;
    for raw in seed(count) {
        imap.append("INBOX", "", &days_ago(1), &raw).await;
    }
    imap.logout().await;
}

/// A message for alice arrives today, and her account syncs.
async fn arrives(setup: &Setup, account: &str, name: &str) {
    let raw = mail(
        &format!("{name}@client.test"),
        name,
        "dan@client.test",
        "alice@example.test",
        0,
    );
    let mut imap = setup.imap("alice").await;
    imap.append("INBOX", "", &days_ago(0), &raw).await;
    imap.logout().await;
    setup.mailroom.sync(account).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_reaches_each_endpoint_signed_once_in_order_and_a_failing_one_delays_no_other()
{
    let setup = Setup::start_configured(Options::default(), |config| {
        config.webhooks.first_retry_secs = 0.2;
    })
    .await;
    let api = &setup.mailroom;
    let good = Receiver::start(200).await;
    let failing = Receiver::start(503).await;
    let (good_id, good_secret) = register(api, &good.url(), json!(["*"]), None).await;
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (failing_id, shown) =
        register(api, &failing.url(), json!(["message.created"]), Some(given)).await;
    assert_eq!(shown, given);
    assert!(good_secret.starts_with("whsec_"), "{good_secret}");
    // The secret is shown once, when the endpoint is registered.
    let fetched = api.get(&format!("/v1/webhooks/{good_id}")).await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.body);
    assert!(fetched.body.get("secret").is_none(), "{}", fetched.body);
    assert_eq!(fetched.body["events"], json!(["*"]));
    let listed = api.get("/v1/webhooks").await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
    assert!(listed.body.to_string().find("whsec_").is_none());

    fill_inbox(&setup, 12).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let events = all_events(api).await;
    assert!(events.len() >= 12, "{events:?}");
    let accepted = good
        .wait_for(
            "every event at the good endpoint",
            Duration::from_secs(30),
            |a| a.len() >= events.len(),
        )
        .await;
    assert_carries(&accepted[..events.len()], &events, &good_secret);
    // One connection serves them all while the endpoint keeps it open; once it closes it,
    // the next delivery goes on a new one, first time.
    assert_eq!(good.connections(), 1, "{} deliveries", accepted.len());
    good.drop_connections();
    tokio::time::sleep(Duration::from_millis(200)).await;
    arrives(&setup, &account, "after-close").await;
    let events = all_events(api).await;
    let accepted = good
        .wait_for("the event after the close", Duration::from_secs(30), |a| {
            a.len() >= events.len()
        })
        .await;
    assert_carries(&accepted[..events.len()], &events, &good_secret);
    assert_eq!(good.connections(), 2);
    let last = deliveries(api, &good_id).await[0].clone();
    assert_eq!(
        (&last["state"], &last["attempts"]),
        (&json!("delivered"), &json!(1)),
        "{last}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["data"]["account_id"] == account.as_str()),
        "the events are the account's"
    );

    // The failing endpoint was retried with its first delivery alone; the rest wait.
    let created: Vec<Value> = events
        .iter()
        .filter(|e| e["type"] == "message.created")
        .cloned()
        .collect();
    let first = created[0]["seq"].as_u64().unwrap();
    let head = wait_for_delivery(api, &failing_id, first, |d| {
        d["attempts"].as_u64() >= Some(2)
    })
    .await;
    assert_eq!(head["state"], "pending");
    assert_eq!(head["last_status"], 503);
    assert!(
        head["last_error"].as_str().unwrap().contains("503"),
        "{head}"
    );
    assert!(head["next_attempt_at"].is_string(), "{head}");
    let waiting = deliveries(api, &failing_id).await;
    assert_eq!(
        waiting.len(),
        created.len(),
        "one delivery per message.created"
    );
    for later in waiting.iter().filter(|d| d["event_seq"] != first) {
        assert_eq!(
            (&later["state"], &later["attempts"]),
            (&json!("pending"), &json!(0)),
            "{later}"
        );
    }
    let tried = failing.received();
    assert!(tried.len() >= 2);
    assert!(
        tried.iter().all(|r| r.id() == head["id"].as_str().unwrap()),
        "retries repeat the id"
    );

    // Once it answers, its events follow in order, each once.
    failing.answer_with(204);
    let accepted = failing
        .wait_for(
            "the failing endpoint's backlog",
            Duration::from_secs(30),
            |a| a.len() >= created.len(),
        )
        .await;
    assert_carries(&accepted[..created.len()], &created, given);
    let states: Vec<Value> = deliveries(api, &failing_id)
        .await
        .iter()
        .map(|d| d["state"].clone())
        .collect();
    assert!(states.iter().all(|s| s == "delivered"), "{states:?}");
    setup.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_that_keeps_failing_fails_can_be_retried_and_410_disables_the_endpoint() {
    let setup = Setup::start_configured(Options::default(), |config| {
        config.webhooks.first_retry_secs = 0.2;
        // Retries end a second after the first attempt.
        config.webhooks.max_retry_hours = 1.0 / 3600.0;
    })
    .await;
    let api = &setup.mailroom;
    let receiver = Receiver::start(500).await;
    let (id, secret) = register(api, &receiver.url(), json!(["message.created"]), None).await;
    fill_inbox(&setup, 3).await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let created: Vec<Value> = all_events(api)
        .await
        .into_iter()
        .filter(|e| e["type"] == "message.created")
        .collect();
    assert_eq!(created.len(), 3);
    let seq = |i: usize| created[i]["seq"].as_u64().unwrap();

    // The first fails for good once its window has passed; then the next one goes.
    let failed = wait_for_delivery(api, &id, seq(0), |d| d["state"] == "failed").await;
    assert!(failed["attempts"].as_u64().unwrap() >= 2, "{failed}");
    assert_eq!(failed["last_status"], 500);
    assert!(failed["next_attempt_at"].is_null());
    wait_for_delivery(api, &id, seq(1), |d| d["attempts"].as_u64() >= Some(1)).await;
    receiver.answer_with(200);
    let accepted = receiver
        .wait_for("the two later events", Duration::from_secs(30), |a| {
            a.len() >= 2
        })
        .await;
    assert_carries(&accepted, &created[1..], &secret);

    // A retry sends the failed one again, under its id.
    let retried = api
        .post(
            &format!(
                "/v1/webhooks/{id}/deliveries/{}/retry",
                failed["id"].as_str().unwrap()
            ),
            Value::Null,
        )
        .await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.body);
    assert_eq!(retried.body["state"], "pending");
    let accepted = receiver
        .wait_for("the retried delivery", Duration::from_secs(30), |a| {
            a.len() >= 3
        })
        .await;
    assert_eq!(accepted[2].id(), failed["id"].as_str().unwrap());
    assert_carries(&accepted[2..], &created[..1], &secret);
    let unknown = api
        .post(
            &format!("/v1/webhooks/{id}/deliveries/msg_nothing/retry"),
            Value::Null,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);

    // 410 Gone: the delivery fails and the endpoint is disabled; nothing new is queued.
    receiver.answer_with(410);
    arrives(&setup, &account, "gone").await;
    let gone_seq = all_events(api)
        .await
        .iter()
        .filter(|e| e["type"] == "message.created")
        .map(|e| e["seq"].as_u64().unwrap())
        .max()
        .unwrap();
    let gone = wait_for_delivery(api, &id, gone_seq, |d| d["state"] == "failed").await;
    assert_eq!(
        (gone["last_status"].clone(), gone["attempts"].clone()),
        (json!(410), json!(1))
    );
    let endpoint = api.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(endpoint.body["enabled"], false, "{}", endpoint.body);
    assert!(
        endpoint.body["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410")
    );
    let held = deliveries(api, &id).await.len();
    arrives(&setup, &account, "after").await;
    assert_eq!(
        deliveries(api, &id).await.len(),
        held,
        "a disabled endpoint gets nothing new"
    );

    // Enabled again, it gets the next events.
    receiver.answer_with(200);
    let enabled = api
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    assert_eq!(enabled.body["disabled_reason"], Value::Null);
    let before = receiver.accepted().len();
    arrives(&setup, &account, "again").await;
    let accepted = receiver
        .wait_for("the event after enabling", Duration::from_secs(30), |a| {
            a.len() > before
        })
        .await;
    let last = accepted.last().unwrap().json();
    assert_eq!(last["type"], "message.created");
    verify(&secret, accepted.last().unwrap()).unwrap();
    setup.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_managed_by_admins_and_the_crm_with_checked_urls_events_and_secrets() {
    let mailroom = Mailroom::start(|_| {}).await;
    let member = mailroom.create_member("Mo", "mo@example.test").await;
    let body = json!({"url": "https://crm.example.test/hooks", "events": ["*"]});
    let as_member = mailroom
        .call_as(
            SERVICE_TOKEN,
            Some(&member),
            Method::POST,
            "/v1/webhooks",
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        as_member.status,
        StatusCode::FORBIDDEN,
        "{}",
        as_member.body
    );
    let listed = mailroom
        .call_as(
            SERVICE_TOKEN,
            Some(&member),
            Method::GET,
            "/v1/webhooks",
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::FORBIDDEN, "{}", listed.body);
    let by_crm = mailroom
        .call_as(
            SERVICE_TOKEN,
            None,
            Method::POST,
            "/v1/webhooks",
            Some(body),
        )
        .await;
    assert_eq!(by_crm.status, StatusCode::CREATED, "{}", by_crm.body);
    assert_eq!(by_crm.body["enabled"], true);
    assert!(by_crm.body["created_at"].is_string());

    for (body, field) in [
        (
            json!({"url": "http://169.254.169.254/latest", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "http://[fe80::1]/hooks", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "ftp://crm.example.test/", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://crm.example.test/", "events": ["message.exploded"]}),
            "events[0]",
        ),
        (
            json!({"url": "https://crm.example.test/", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://crm.example.test/", "events": ["*"], "secret": "hunter2"}),
            "secret",
        ),
        (
            json!({"url": "https://crm.example.test/", "events": ["*"], "secret": "whsec_c2hvcnQ="}),
            "secret",
        ),
        (json!({"events": ["*"]}), "url"),
    ] {
        let refused = mailroom.post("/v1/webhooks", body.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            refused.body
        );
        assert_eq!(
            refused.body["error"]["field"], field,
            "{body}: {}",
            refused.body
        );
    }

    let id = by_crm.body["id"].as_str().unwrap();
    let changed = mailroom
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({"events": ["message.sent", "message.created", "message.sent"], "enabled": false})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(
        changed.body["events"],
        json!(["message.sent", "message.created"])
    );
    assert_eq!(changed.body["enabled"], false);
    let moved = mailroom
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({"url": "http://169.254.169.254/"})),
        )
        .await;
    assert_eq!(
        moved.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        moved.body
    );

    let deleted = mailroom
        .call(Method::DELETE, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    for path in [
        format!("/v1/webhooks/{id}"),
        format!("/v1/webhooks/{id}/deliveries"),
    ] {
        assert_eq!(
            mailroom.get(&path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    mailroom.stop().await;
}
