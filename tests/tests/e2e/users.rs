//! Users, tokens, the caller's own settings, the OpenAPI document, and a long list of bad
//! requests that must each get a 4xx JSON error.

use mailroom_tests::mailroom::{ADMIN_TOKEN, Mailroom, SERVICE_TOKEN, answer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn member(mailroom: &Mailroom, name: &str) -> (String, String) {
    let created = mailroom
        .post(
            "/v1/users",
            json!({"name": name, "email": format!("{name}@crm.test"), "role": "member"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("an id").to_owned();
    let token = mailroom
        .call_as(
            SERVICE_TOKEN,
            Some(&id),
            Method::POST,
            "/v1/me/tokens",
            Some(json!({"name": "t"})),
        )
        .await;
    (
        id,
        token.body["token"].as_str().expect("a token").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_manage_users_and_members_do_not() {
    let mailroom = Mailroom::start(|_| {}).await;
    let created = mailroom
        .post(
            "/v1/users",
            json!({"name": "Ann", "email": "ann@crm.test", "role": "member", "shared_inbox": true, "external_id": "crm-42"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["external_id"], "crm-42");
    assert_eq!(created.body["shared_inbox"], true);
    let id = created.body["id"].as_str().expect("an id");

    let duplicate = mailroom
        .post("/v1/users", json!({"name": "Other", "email": "o@crm.test", "role": "member", "external_id": "crm-42"}))
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT, "{}", duplicate.body);

    let list = mailroom.get("/v1/users?limit=1").await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    let next = list.body["next_cursor"].as_str().expect("a second page");
    let rest = mailroom.get(&format!("/v1/users?cursor={next}")).await;
    assert_eq!(rest.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest.body["next_cursor"], Value::Null);

    let patched = mailroom
        .call(
            Method::PATCH,
            &format!("/v1/users/{id}"),
            Some(json!({"role": "admin", "name": "Ann B"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["role"], "admin");
    assert_eq!(
        mailroom.get(&format!("/v1/users/{id}")).await.body["name"],
        "Ann B"
    );

    // Ann is an admin now; with her, the first admin may step down, but not the last one.
    let first_admin = mailroom.get("/v1/me").await.body["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let step_down = mailroom
        .call(
            Method::PATCH,
            &format!("/v1/users/{id}"),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(step_down.status, StatusCode::OK, "{}", step_down.body);
    let last = mailroom
        .call(
            Method::PATCH,
            &format!("/v1/users/{first_admin}"),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(last.status, StatusCode::CONFLICT, "{}", last.body);

    let (_, member_token) = member(&mailroom, "mo").await;
    for (method, path, body) in [
        (Method::GET, "/v1/users".to_owned(), None),
        (Method::GET, format!("/v1/users/{id}"), None),
        (
            Method::POST,
            "/v1/users".to_owned(),
            Some(json!({"name": "x", "email": "x@crm.test", "role": "admin"})),
        ),
        (
            Method::PATCH,
            format!("/v1/users/{id}"),
            Some(json!({"role": "member"})),
        ),
    ] {
        let refused = mailroom
            .call_as(&member_token, None, method, &path, body)
            .await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            refused.body
        );
    }
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_minted_by_their_owner_and_revoked_by_owner_or_admin() {
    let mailroom = Mailroom::start(|_| {}).await;
    let (id, token) = member(&mailroom, "tess").await;
    assert!(token.starts_with("mr_") && token.len() > 40, "{token}");

    let second = mailroom
        .call_as(
            &token,
            None,
            Method::POST,
            "/v1/me/tokens",
            Some(json!({"name": "laptop"})),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    let second_id = second.body["id"].as_str().expect("an id").to_owned();
    let second_token = second.body["token"].as_str().expect("a token").to_owned();
    assert_eq!(
        mailroom
            .call_as(&second_token, None, Method::GET, "/v1/me", None)
            .await
            .body["id"],
        id.as_str()
    );

    // Nobody mints a token for someone else: there is no such endpoint.
    let minting = mailroom
        .call(
            Method::POST,
            &format!("/v1/users/{id}/tokens"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert!(matches!(
        minting.status,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ));

    // The owner revokes their own; the admin revokes anyone's; nobody revokes through the
    // wrong user.
    let wrong_owner = mailroom
        .call(
            Method::DELETE,
            &format!("/v1/users/usr_other/tokens/{second_id}"),
            None,
        )
        .await;
    assert_eq!(wrong_owner.status, StatusCode::NOT_FOUND);
    let revoked = mailroom
        .call_as(
            &token,
            None,
            Method::DELETE,
            &format!("/v1/me/tokens/{second_id}"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        mailroom
            .call_as(&second_token, None, Method::GET, "/v1/me", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let still = mailroom
        .call_as(&token, None, Method::GET, "/v1/me", None)
        .await;
    assert_eq!(
        still.status,
        StatusCode::OK,
        "revoking one token leaves the others"
    );

    let third = mailroom
        .call_as(
            &token,
            None,
            Method::POST,
            "/v1/me/tokens",
            Some(json!({"name": "third"})),
        )
        .await;
    let third_id = third.body["id"].as_str().expect("an id").to_owned();
    let third_token = third.body["token"].as_str().expect("a token").to_owned();
    let by_admin = mailroom
        .call(
            Method::DELETE,
            &format!("/v1/users/{id}/tokens/{third_id}"),
            None,
        )
        .await;
    assert_eq!(by_admin.status, StatusCode::NO_CONTENT);
    let gone = mailroom
        .call_as(&third_token, None, Method::GET, "/v1/me", None)
        .await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_signature_is_sanitized_and_has_a_text_form() {
    let mailroom = Mailroom::start(|_| {}).await;
    let answer = mailroom
        .call(
            Method::PATCH,
            "/v1/me",
            Some(json!({"signature": "<p onclick=\"steal()\">Ann <b>Smith</b><br>Sales</p><script>alert(1)</script>"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let html = answer.body["signature"].as_str().expect("a signature");
    assert!(
        !html.contains("script") && !html.contains("onclick"),
        "{html}"
    );
    assert!(html.contains("<b>Smith</b>"));
    assert_eq!(answer.body["signature_text"], "Ann Smith\nSales");
    let too_long = mailroom
        .call(
            Method::PATCH,
            "/v1/me",
            Some(json!({"signature": "x".repeat(20_000)})),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_long.body["error"]["field"], "signature");
    let cleared = mailroom
        .call(Method::PATCH, "/v1/me", Some(json!({"signature": null})))
        .await;
    assert_eq!(cleared.body["signature"], Value::Null);
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_describes_every_route_the_server_has() {
    let mailroom = Mailroom::start(|_| {}).await;
    let doc = answer(mailroom.http().get(mailroom.url("/v1/openapi.json"))).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.0.3");
    let paths = doc.body["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("a path item") {
            operations += 1;
            let concrete = path
                .replace("{id}", "x_1")
                .replace("{token_id}", "tok_1")
                .replace("{connector}", "x");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            // JSON, also from the routes that answer a browser with a page.
            let mut request = mailroom
                .http()
                .request(method.clone(), mailroom.url(&concrete))
                .bearer_auth(ADMIN_TOKEN)
                .header("accept", "application/json");
            if operation.get("requestBody").is_some() {
                request = request.json(&json!({}));
            }
            // Not every answer is JSON (`/metrics` is text).
            let response = request.send().await.expect("the server answers");
            assert_ne!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            let text = response.text().await.expect("a body");
            assert!(!text.contains("no such endpoint"), "{method} {path}");
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty())
            );
        }
    }
    // Every endpoint docs/api.md describes.
    for (method, path) in [
        ("get", "/healthz"),
        ("get", "/v1/connectors"),
        ("post", "/v1/users"),
        ("get", "/v1/users"),
        ("get", "/v1/users/{id}"),
        ("patch", "/v1/users/{id}"),
        ("delete", "/v1/users/{id}/tokens/{token_id}"),
        ("get", "/v1/me"),
        ("patch", "/v1/me"),
        ("post", "/v1/me/tokens"),
        ("delete", "/v1/me/tokens/{token_id}"),
        ("post", "/v1/accounts/test"),
        ("post", "/v1/accounts"),
        ("get", "/v1/accounts"),
        ("get", "/v1/accounts/{id}"),
        ("patch", "/v1/accounts/{id}"),
        ("delete", "/v1/accounts/{id}"),
        ("put", "/v1/accounts/{id}/primary"),
        ("delete", "/v1/accounts/{id}/primary"),
        ("post", "/v1/accounts/{id}/reconnect"),
        ("get", "/v1/accounts/{id}/folders"),
        ("patch", "/v1/connectors/{id}"),
        ("post", "/v1/oauth/{connector}/start"),
        ("get", "/v1/oauth/callback"),
        ("get", "/metrics"),
        ("post", "/v1/webhooks"),
        ("get", "/v1/webhooks"),
        ("get", "/v1/webhooks/{id}"),
        ("patch", "/v1/webhooks/{id}"),
        ("delete", "/v1/webhooks/{id}"),
        ("get", "/v1/webhooks/{id}/deliveries"),
        ("post", "/v1/webhooks/{id}/deliveries/{delivery_id}/retry"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    assert!(operations >= 21);
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_4xx_json_errors_and_the_server_stays_healthy() {
    let mailroom = Mailroom::start(|config| config.api.max_body_bytes = 64 * 1024).await;
    let me = mailroom.get("/v1/me").await;
    let admin_id = me.body["id"].as_str().expect("an id").to_owned();
    let connection = json!({
        "connector": "imap", "email": "a@example.test", "password": "pw",
        "imap": {"host": "127.0.0.1", "port": 1, "encryption": "ssl"},
        "smtp": {"host": "127.0.0.1", "port": 1, "encryption": "ssl"},
    });
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = connection.clone();
        body["kind"] = json!("personal");
        body["sync_from"] = json!("now");
        change(&mut body);
        body.to_string()
    };
    let huge = "x".repeat(70 * 1024);
    let cases: Vec<(Method, String, String)> = vec![
        (Method::POST, "/v1/users".into(), "{".into()),
        (Method::POST, "/v1/users".into(), "[]".into()),
        (Method::POST, "/v1/users".into(), "null".into()),
        (
            Method::POST,
            "/v1/users".into(),
            json!({"name": "x"}).to_string(),
        ),
        (
            Method::POST,
            "/v1/users".into(),
            json!({"name": "x", "email": "nope", "role": "member"}).to_string(),
        ),
        (
            Method::POST,
            "/v1/users".into(),
            json!({"name": "x", "email": "x@y.z", "role": "king"}).to_string(),
        ),
        (
            Method::POST,
            "/v1/users".into(),
            json!({"name": 7, "email": "x@y.z", "role": "member"}).to_string(),
        ),
        (
            Method::POST,
            "/v1/users".into(),
            json!({"name": "x", "email": "x@y.z", "role": "member", "shared_inbox": "yes"})
                .to_string(),
        ),
        (
            Method::POST,
            "/v1/users".into(),
            json!({"name": "x", "email": "x@y.z", "role": "member", "external_id": "has space"})
                .to_string(),
        ),
        (
            Method::POST,
            "/v1/users".into(),
            json!({"name": "x", "email": "x@y.z", "role": "member", "admin": true}).to_string(),
        ),
        (
            Method::POST,
            "/v1/users".into(),
            json!({"name": "", "email": "x@y.z", "role": "member"}).to_string(),
        ),
        (
            Method::PATCH,
            format!("/v1/users/{admin_id}"),
            json!({"role": 1}).to_string(),
        ),
        (
            Method::PATCH,
            "/v1/users/usr_missing".into(),
            json!({"name": "x"}).to_string(),
        ),
        (Method::GET, "/v1/users/usr_missing".into(), String::new()),
        (
            Method::PATCH,
            "/v1/me".into(),
            json!({"signature": 5}).to_string(),
        ),
        (
            Method::PATCH,
            "/v1/me".into(),
            json!({"name": "x"}).to_string(),
        ),
        (Method::POST, "/v1/me/tokens".into(), json!({}).to_string()),
        (
            Method::POST,
            "/v1/me/tokens".into(),
            json!({"name": ["a"]}).to_string(),
        ),
        (
            Method::DELETE,
            "/v1/me/tokens/tok_missing".into(),
            String::new(),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["kind"] = json!("team")),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["sync_from"] = json!("2_months")),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["sync_from"] = json!(null)),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["create_contact"] = json!("true")),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["active_folders"] = json!("INBOX")),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["imap"]["port"] = json!(-1)),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["imap"]["port"] = json!(1.5)),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["smtp"]["host"] = json!("")),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["imap"]["extra"] = json!(1)),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["connector"] = json!("nope")),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["email"] = json!("a@b@c")),
        ),
        (
            Method::POST,
            "/v1/accounts".into(),
            with(&|b| b["settings"] = json!([1])),
        ),
        (Method::POST, "/v1/accounts".into(), huge.clone()),
        (
            Method::POST,
            "/v1/accounts/test".into(),
            "{\"connector\": \"imap\",".into(),
        ),
        (
            Method::GET,
            "/v1/accounts/acc_missing".into(),
            String::new(),
        ),
        (
            Method::PATCH,
            "/v1/accounts/acc_missing".into(),
            json!({"enabled": false}).to_string(),
        ),
        (
            Method::DELETE,
            "/v1/accounts/acc_missing".into(),
            String::new(),
        ),
        (
            Method::PUT,
            "/v1/accounts/acc_missing/primary".into(),
            String::new(),
        ),
        (
            Method::POST,
            "/v1/accounts/acc_missing/reconnect".into(),
            connection.to_string(),
        ),
        (Method::GET, "/v1/accounts?limit=501".into(), String::new()),
        (Method::GET, "/v1/accounts?limit=abc".into(), String::new()),
        (Method::GET, "/v1/accounts?cursor=***".into(), String::new()),
        (Method::GET, "/v1/nothing/here".into(), String::new()),
        (Method::PUT, "/v1/me".into(), String::new()),
        (Method::DELETE, "/healthz".into(), String::new()),
    ];
    assert!(cases.len() >= 30);
    for (method, path, body) in cases {
        let mut request = mailroom
            .http()
            .request(method.clone(), mailroom.url(&path))
            .bearer_auth(ADMIN_TOKEN);
        if !body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let answer = answer(request).await;
        assert!(
            answer.status.is_client_error(),
            "{method} {path} {body:.60} → {}",
            answer.status
        );
        if answer.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The body was refused unread: the client must not reuse the connection.
            assert_eq!(answer.headers["connection"], "close", "{method} {path}");
        }
        assert!(
            answer.body["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
                && answer.body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
            "{method} {path}: {}",
            answer.body
        );
    }
    assert_eq!(mailroom.get("/healthz").await.body["status"], "ok");
    assert_eq!(mailroom.get("/v1/me").await.status, StatusCode::OK);
    mailroom.stop().await;
}
