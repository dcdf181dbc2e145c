//! `GET /metrics`: for admins and the CRM's service (or anyone when configured public), in
//! a format a Prometheus parser reads, with counters that move as mail syncs.

use mailroom_tests::mailbox::{Setup, days_ago, mail};
use mailroom_tests::mailroom::{Api, Mailroom, SERVICE_TOKEN};
use mailroom_tests::servers::Options;
use prometheus_parse::{Scrape, Value};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Scrapes the server as `token` and parses what it answers.
pub(crate) async fn scrape(api: &Api, token: Option<&str>) -> Scrape {
    let mut request = reqwest::Client::new().get(api.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the text parses")
}

/// The value of the sample named `metric` with these labels (others may be present).
pub(crate) fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && labels
                    .iter()
                    .all(|(name, want)| s.labels.get(name) == Some(*want))
        })
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_move_as_mail_syncs() {
    let setup = Setup::start_configured(Options::default(), |_| {}).await;
    let api = &setup.mailroom;
    let member = api.create_member("Mo", "mo@example.test").await;
    let anonymous = reqwest::get(api.url("/metrics")).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let as_member = api
        .call_as(SERVICE_TOKEN, Some(&member), Method::GET, "/metrics", None)
        .await;
    assert_eq!(
        as_member.status,
        StatusCode::FORBIDDEN,
        "{}",
        as_member.body
    );
    let before = scrape(api, Some(SERVICE_TOKEN)).await;
    assert_eq!(
        value(
            &before,
            "mailroom_messages_ingested_total",
            &[("connector", "imap")]
        ),
        None
    );
    assert_eq!(value(&before, "mailroom_outbox_depth", &[]), Some(0.0));
    assert_eq!(value(&before, "mailroom_webhook_backlog", &[]), Some(0.0));

    let mut imap = setup.imap("alice").await;
    let mut bytes = 0;
    for i in 0..5 {
        let raw = mail(
            &format!("m{i}@client.test"),
            &format!("m {i}"),
            "dan@client.test",
            "alice@example.test",
            1,
        );
        bytes += raw.len();
        imap.append("INBOX", "", &days_ago(1), &raw).await;
    }
    imap.logout().await;
    let account = setup.connect("alice", "1_month", json!({})).await;
    let after = scrape(api, Some(mailroom_tests::mailroom::ADMIN_TOKEN)).await;
    let imap_label = [("connector", "imap")];
    assert_eq!(
        value(&after, "mailroom_messages_ingested_total", &imap_label),
        Some(5.0)
    );
    let fetched = value(&after, "mailroom_fetched_bytes_total", &imap_label).unwrap();
    assert!(fetched >= bytes as f64, "{fetched} < {bytes}");
    assert_eq!(
        value(
            &after,
            "mailroom_accounts",
            &[("connector", "imap"), ("state", "active")]
        ),
        Some(1.0)
    );
    let ok_jobs = value(
        &after,
        "mailroom_sync_jobs_total",
        &[("connector", "imap"), ("result", "ok")],
    )
    .unwrap();
    assert!(ok_jobs >= 1.0);
    assert!(value(&after, "mailroom_sync_job_duration_seconds", &imap_label).unwrap() >= ok_jobs);
    assert_eq!(
        value(
            &after,
            "mailroom_api_requests_total",
            &[
                ("method", "POST"),
                ("route", "/v1/accounts"),
                ("status", "201")
            ]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &after,
            "mailroom_api_requests_total",
            &[("method", "GET"), ("route", "/metrics"), ("status", "401")]
        ) == Some(1.0),
        "routes are named by their template"
    );

    // A new message: the counters move by it.
    let mut imap = setup.imap("alice").await;
    let raw = mail(
        "new@client.test",
        "new",
        "dan@client.test",
        "alice@example.test",
        0,
    );
    imap.append("INBOX", "", &days_ago(0), &raw).await;
    imap.logout().await;
    api.sync(&account).await;
    let later = scrape(api, Some(SERVICE_TOKEN)).await;
    assert_eq!(
        value(&later, "mailroom_messages_ingested_total", &imap_label),
        Some(6.0)
    );
    assert!(
        value(
            &later,
            "mailroom_sync_jobs_total",
            &[("connector", "imap"), ("result", "ok")]
        )
        .unwrap()
            > ok_jobs
    );
    setup.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn public_metrics_need_no_token() {
    let mailroom = Mailroom::start(|config| config.metrics.public = true).await;
    let scraped = scrape(&mailroom, None).await;
    assert!(
        scraped
            .samples
            .iter()
            .any(|s| s.metric == "mailroom_outbox_depth"),
        "{:?}",
        scraped.samples
    );
    mailroom.stop().await;
}
