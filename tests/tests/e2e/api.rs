//! The API's contract for what is not a mail server's fault: authentication, paging, the
//! error shape for every kind of bad request, and the connection-test rate limit.

use mailroom_tests::mailroom::{Mailroom, answer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn valid_body() -> Value {
    json!({
        "connector": "imap", "email": "a@example.test", "password": "pw",
        "imap": {"host": "127.0.0.1", "port": 1, "encryption": "ssl"},
        "smtp": {"host": "127.0.0.1", "port": 1, "encryption": "ssl"},
    })
}

/// A change that spoils one field of a valid body.
type Change = fn(&mut Value);

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_connectors_answer() {
    let mailroom = Mailroom::start(|_| {}).await;
    let health = answer(mailroom.http().get(mailroom.url("/healthz"))).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");

    let connectors = mailroom.get("/v1/connectors").await;
    assert_eq!(connectors.status, StatusCode::OK);
    assert_eq!(connectors.body["next_cursor"], Value::Null);
    let google = &connectors.body["items"][0];
    assert_eq!(google["id"], "google");
    assert_eq!(google["auth"], "oauth2");
    assert_eq!(google["servers"], json!([]));
    assert_eq!(google["wit_version"], "0.6.0");
    assert_eq!(google["files_sent"], true);
    assert_eq!(google["configured"], false);
    let imap = &connectors.body["items"][1];
    assert_eq!(imap["id"], "imap");
    assert_eq!(imap.get("configured"), None);
    assert_eq!(imap["auth"], "password");
    assert_eq!(imap["servers"], json!(["imap", "smtp"]));
    assert_eq!(imap["builtin"], true);
    assert_eq!(imap["wit_version"], "0.8.0");
    assert!(
        imap["digest"].as_str().is_some_and(|d| d.len() == 7 + 64),
        "{imap}"
    );

    let microsoft = &connectors.body["items"][2];
    assert_eq!(microsoft["id"], "microsoft");
    assert_eq!(microsoft["auth"], "oauth2");
    assert_eq!(microsoft["servers"], json!([]));
    assert_eq!(microsoft["wit_version"], "0.6.0");
    assert_eq!(microsoft["version"], "1.0.0");
    assert_eq!(microsoft["files_sent"], true);
    assert_eq!(microsoft["mailbox_wide_ids"], true);
    assert_eq!(microsoft["configured"], false);
    assert_eq!(connectors.body["items"].as_array().map(Vec::len), Some(3));
    for connector in connectors.body["items"].as_array().unwrap() {
        assert!(
            connector["digest"]
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:") && d.len() == 7 + 64),
            "{connector}"
        );
    }

    let paged = mailroom.get("/v1/connectors?limit=0").await;
    assert_eq!(paged.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(paged.body["error"]["field"], "limit");
    let bad_cursor = mailroom.get("/v1/connectors?cursor=%%%").await;
    assert!(bad_cursor.status.is_client_error(), "{bad_cursor:?}");
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_a_valid_token_are_401() {
    let mailroom = Mailroom::start(|_| {}).await;
    let none = answer(mailroom.http().get(mailroom.url("/v1/connectors"))).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_error(&none.body, "unauthorized");
    let wrong = answer(
        mailroom
            .http()
            .post(mailroom.url("/v1/accounts/test"))
            .bearer_auth("mr_wrong")
            .json(&valid_body()),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_and_wrong_methods_get_json_errors() {
    let mailroom = Mailroom::start(|_| {}).await;
    let missing = mailroom.get("/v1/no-such-thing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_error(&missing.body, "not_found");
    let wrong_method = mailroom.call(Method::DELETE, "/v1/connectors", None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&wrong_method.body, "method_not_allowed");
    let get_test = mailroom.call(Method::PUT, "/v1/accounts/test", None).await;
    assert_eq!(get_test.status, StatusCode::METHOD_NOT_ALLOWED);
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_are_refused_with_the_error_shape() {
    let mailroom = Mailroom::start(|config| config.api.max_body_bytes = 4096).await;
    let post_raw = |body: reqwest::Body| {
        mailroom
            .http()
            .post(mailroom.url("/v1/accounts/test"))
            .bearer_auth(mailroom_tests::mailroom::ADMIN_TOKEN)
            .body(body)
    };

    let malformed = answer(post_raw("{not json".into())).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_error(&malformed.body, "bad_request");

    let not_an_object = answer(post_raw("[1, 2]".into())).await;
    assert_eq!(not_an_object.status, StatusCode::BAD_REQUEST);

    let too_large = answer(post_raw(vec![b' '; 5000].into())).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&too_large.body, "payload_too_large");

    let chunks: Vec<Result<&'static str, std::io::Error>> = vec![Ok("{}")];
    let chunked = answer(post_raw(reqwest::Body::wrap_stream(futures::stream::iter(
        chunks,
    ))))
    .await;
    assert_eq!(chunked.status, StatusCode::LENGTH_REQUIRED);
    assert_error(&chunked.body, "length_required");
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_fields_are_422_and_name_the_field() {
    let mailroom = Mailroom::start(|_| {}).await;
    let cases: Vec<(&str, Change)> = vec![
        ("imap.port", |b| b["imap"]["port"] = json!(0)),
        ("imap.port", |b| b["imap"]["port"] = json!("993")),
        ("smtp.encryption", |b| {
            b["smtp"]["encryption"] = json!("tls")
        }),
        ("email", |b| b["email"] = json!("no-at-sign")),
        ("connector", |b| b["connector"] = json!("carrier-pigeon")),
        ("password", |b| b["password"] = json!(null)),
        ("smtp", |b| b["smtp"] = json!(null)),
        ("imap.host", |b| {
            b["imap"]["host"] = json!("169.254.169.254")
        }),
        ("imap.host", |b| b["imap"]["host"] = json!("fe80::1")),
        ("favourite_colour", |b| {
            b["favourite_colour"] = json!("blue")
        }),
        ("allow_insecure_certificate", |b| {
            b["allow_insecure_certificate"] = json!("yes")
        }),
    ];
    for (field, change) in cases {
        let mut body = valid_body();
        change(&mut body);
        let answer = mailroom.post("/v1/accounts/test", body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            answer.body
        );
        assert_eq!(answer.body["error"]["field"], field, "{}", answer.body);
        assert_error(&answer.body, "invalid");
    }
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_tests_are_rate_limited_per_caller() {
    let mailroom = Mailroom::start(|config| config.api.connection_tests_per_minute = 2).await;
    for _ in 0..2 {
        let answer = mailroom.post("/v1/accounts/test", valid_body()).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let limited = mailroom.post("/v1/accounts/test", valid_body()).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_error(&limited.body, "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry_after));
    mailroom.stop().await;
}
