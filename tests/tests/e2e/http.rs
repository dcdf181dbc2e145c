//! Where a 0.5.0 connector's HTTP requests may go, and what the host adds to them: the probe
//! connector (`tests/components/http-probe`) reports each request's outcome, and small HTTP
//! servers on loopback record what they received.

use mailroom_tests::mailroom::{Mailroom, http_probe_connector};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP server that answers `200 ok` and records each request's `Authorization`.
async fn recorder() -> (u16, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let authorization = head.lines().find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.trim().to_owned())
                });
                record.lock().unwrap().push(authorization);
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (port, seen)
}

async fn probe(
    mailroom: &Mailroom,
    api_port: u16,
    urls: &[String],
    header: Option<&str>,
) -> Vec<String> {
    let mut settings = json!({"urls": urls.join(" ")});
    if let Some(header) = header {
        settings["header"] = json!(header);
    }
    let answer = mailroom
        .post(
            "/v1/accounts/test",
            json!({"connector": "http-probe", "email": "ann@example.test", "password": "s3cret",
                   "api": {"host": "127.0.0.1", "port": api_port, "encryption": "none"},
                   "settings": settings}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", answer.body))
        .split(" | ")
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_reaches_only_its_account_and_granted_hosts_and_never_holds_the_password() {
    let (account_port, at_account) = recorder().await;
    let (other_port, at_other) = recorder().await;
    let mailroom = Mailroom::start(|config| {
        config.connectors.files = vec![http_probe_connector()];
        config.net.http_plain_loopback = true;
        config.net.http_granted_private = true;
    })
    .await;
    let info = mailroom.get("/v1/connectors/http-probe").await;
    assert_eq!(info.body["wit_version"], "0.5.0", "{}", info.body);
    assert_eq!(info.body["hosts"], json!(["localhost"]));
    assert_eq!(info.body["granted_hosts"], json!([]));

    let urls = [
        format!("http://127.0.0.1:{account_port}/account"),
        format!("http://localhost:{other_port}/asked-for"),
        format!("http://127.0.0.1:{other_port}/another-port"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "https://example.com/".to_owned(),
    ];
    let outcomes = probe(&mailroom, account_port, &urls, None).await;
    assert_eq!(outcomes[0], "200 ok", "{outcomes:?}");
    for refused in &outcomes[1..] {
        assert!(refused.starts_with("refused"), "{outcomes:?}");
    }
    // The account's server got the login from the host; nothing else was reached.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "ann@example.test:s3cret"
        )
    );
    assert_eq!(*at_account.lock().unwrap(), vec![Some(basic.clone())]);
    assert!(at_other.lock().unwrap().is_empty());

    // Granted, the host it asked for is reached, without any credential.
    let granted = mailroom
        .call(
            Method::PATCH,
            "/v1/connectors/http-probe",
            Some(json!({"granted_hosts": ["localhost"]})),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    assert_eq!(granted.body["granted_hosts"], json!(["localhost"]));
    let outcomes = probe(&mailroom, account_port, &urls[1..2], None).await;
    assert_eq!(outcomes, ["200 ok"]);
    assert_eq!(*at_other.lock().unwrap(), vec![None]);

    // A host it did not ask for cannot be granted; members cannot grant.
    let refused = mailroom
        .call(
            Method::PATCH,
            "/v1/connectors/http-probe",
            Some(json!({"granted_hosts": ["evil.example"]})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    let member = mailroom.create_member("Mo", "mo@example.test").await;
    let by_member = mailroom
        .call_as(
            mailroom_tests::mailroom::SERVICE_TOKEN,
            Some(&member),
            Method::PATCH,
            "/v1/connectors/http-probe",
            Some(json!({"granted_hosts": []})),
        )
        .await;
    assert_eq!(
        by_member.status,
        StatusCode::FORBIDDEN,
        "{}",
        by_member.body
    );

    // The connector cannot set Authorization itself.
    let outcomes = probe(
        &mailroom,
        account_port,
        &urls[..1],
        Some("authorization: Bearer forged"),
    )
    .await;
    assert!(outcomes[0].starts_with("refused header"), "{outcomes:?}");
    assert_eq!(at_account.lock().unwrap().len(), 1);

    // Grants are kept.
    let mailroom = mailroom.restart().await;
    let info = mailroom.get("/v1/connectors/http-probe").await;
    assert_eq!(
        info.body["granted_hosts"],
        json!(["localhost"]),
        "{}",
        info.body
    );
    mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_is_refused_unless_the_operator_allows_it_for_loopback() {
    let (port, seen) = recorder().await;
    let mailroom = Mailroom::start(|config| {
        config.connectors.files = vec![http_probe_connector()];
    })
    .await;
    let outcomes = probe(
        &mailroom,
        port,
        &[format!("http://127.0.0.1:{port}/")],
        None,
    )
    .await;
    assert!(outcomes[0].starts_with("refused"), "{outcomes:?}");
    assert!(seen.lock().unwrap().is_empty());
    mailroom.stop().await;
}
