//! The fake over real HTTPS: an OAuth code flow with PKCE, then Gmail API
//! calls, through a minimal HTTP/1.1 client on tokio-rustls that trusts only
//! the fake's certificate.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use mailroom_fake_google::{Consent, FakeGoogle, Options};
use mailroom_fake_https::oauth::{random_token, s256};
use mailroom_fake_https::request::param;
use mailroom_fake_https::testing::{
    Dialer, assert_stops_listening, code_redemption, port_of, query_of,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const ANN: &str = "ann@example.com";

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One request per connection, `Connection: close`, read to the end.
struct Client {
    dialer: Dialer,
}

impl Client {
    fn new(fake: &FakeGoogle) -> Self {
        Client {
            dialer: Dialer::new(port_of(&fake.base_url()), &fake.cert_pem()),
        }
    }

    async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut tls = self.dialer.connect().await;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.dialer.port(),
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(body).await.unwrap();
        tls.flush().await.unwrap();
        let mut bytes = Vec::new();
        if let Err(e) = tls.read_to_end(&mut bytes).await {
            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
        }
        parse(&bytes)
    }

    async fn get(&self, target: &str, token: Option<&str>) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        self.send("GET", target, &headers, b"").await
    }

    async fn post_json(&self, target: &str, token: &str, body: &Value) -> Answer {
        let auth = format!("Bearer {token}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        self.send("POST", target, &headers, body.to_string().as_bytes())
            .await
    }

    async fn post_form(&self, target: &str, form: &[(&str, &str)]) -> Answer {
        let body = serde_urlencoded::to_string(form).unwrap();
        let headers = [("Content-Type", "application/x-www-form-urlencoded")];
        self.send("POST", target, &headers, body.as_bytes()).await
    }
}

fn parse(bytes: &[u8]) -> Answer {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP head");
    let head = std::str::from_utf8(&bytes[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = bytes[split + 4..].to_vec();
    if let Some((_, length)) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        body.truncate(length.parse().unwrap());
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn mail(n: u32) -> Vec<u8> {
    format!(
        "From: bob@example.com\r\nTo: {ANN}\r\nSubject: note {n}\r\nMessage-ID: <n{n}@example.com>\r\n\r\nHello {n}\r\n"
    )
    .into_bytes()
}

/// The authorization request, the redirect, and the code exchange.
async fn sign_in(fake: &FakeGoogle, client: &Client) -> Value {
    let verifier = random_token("", 32);
    let challenge = s256(&verifier);
    let query = serde_urlencoded::to_string([
        ("client_id", "mailroom-test-client"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "https://mail.google.com/"),
        ("state", "s-123"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("access_type", "offline"),
        ("prompt", "consent"),
    ])
    .unwrap();
    let auth_path = fake.auth_url().replace(&fake.base_url(), "");
    let redirect = client.get(&format!("{auth_path}?{query}"), None).await;
    assert_eq!(redirect.status, 302);
    let location = redirect.header("location").unwrap();
    assert!(location.starts_with(REDIRECT));
    let params = query_of(location);
    assert_eq!(param(&params, "state"), Some("s-123"));
    let code = param(&params, "code").unwrap().to_owned();

    let wrong = client
        .post_form(
            "/token",
            &code_redemption("4/0-not-a-code", REDIRECT, &verifier),
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json()["error"], "invalid_grant");

    let tokens = client
        .post_form("/token", &code_redemption(&code, REDIRECT, &verifier))
        .await;
    assert_eq!(
        tokens.status,
        200,
        "{}",
        String::from_utf8_lossy(&tokens.body)
    );
    tokens.json()
}

#[tokio::test]
async fn code_flow_with_pkce_then_gmail_calls() {
    let fake = FakeGoogle::start(Options::default()).await;
    assert!(fake.base_url().starts_with("https://127.0.0.1:"));
    assert_eq!(fake.token_url(), format!("{}/token", fake.base_url()));
    fake.add_user(ANN);
    let older = fake.insert(ANN, &mail(1), &["INBOX"], 1_700_000_000_000);
    let newer = fake.insert(ANN, &mail(2), &["INBOX", "UNREAD"], 1_700_000_060_000);
    let client = Client::new(&fake);

    let tokens = sign_in(&fake, &client).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("ya29."));
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(fake.tokens_issued(), vec![access.clone(), refresh.clone()]);

    let list = client
        .get("/gmail/v1/users/me/messages?labelIds=INBOX", Some(&access))
        .await;
    assert_eq!(list.status, 200);
    let list = list.json();
    assert_eq!(list["resultSizeEstimate"], 2);
    assert_eq!(
        list["messages"],
        json!([{ "id": newer, "threadId": newer }, { "id": older, "threadId": older }])
    );

    let raw = client
        .get(
            &format!(
                "/gmail/v1/users/{}/messages/{older}?format=raw",
                "ann%40example.com"
            ),
            Some(&access),
        )
        .await
        .json();
    assert_eq!(
        URL_SAFE.decode(raw["raw"].as_str().unwrap()).unwrap(),
        mail(1)
    );
    assert_eq!(raw["internalDate"], "1700000000000");

    let start = client
        .get("/gmail/v1/users/me/profile", Some(&access))
        .await
        .json();
    assert_eq!(start["emailAddress"], ANN);
    let start_history = start["historyId"].as_str().unwrap().to_owned();
    let modified = client
        .post_json(
            &format!("/gmail/v1/users/me/messages/{newer}/modify"),
            &access,
            &json!({ "removeLabelIds": ["UNREAD"] }),
        )
        .await
        .json();
    assert_eq!(modified["labelIds"], json!(["INBOX"]));
    let history = client
        .get(
            &format!("/gmail/v1/users/me/history?startHistoryId={start_history}"),
            Some(&access),
        )
        .await
        .json();
    assert_eq!(
        history["history"][0]["labelsRemoved"][0]["labelIds"],
        json!(["UNREAD"])
    );

    let sent = client
        .post_json(
            "/gmail/v1/users/me/messages/send",
            &access,
            &json!({ "raw": URL_SAFE_NO_PAD.encode(mail(3)), "threadId": older }),
        )
        .await
        .json();
    assert_eq!(sent["threadId"], older.as_str());
    assert_eq!(fake.sent(ANN).len(), 1);
    assert_eq!(fake.sent(ANN)[0].raw, mail(3));

    let anonymous = client.get("/gmail/v1/users/me/messages", None).await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.header("www-authenticate").is_some());
    assert_eq!(anonymous.json()["error"]["status"], "UNAUTHENTICATED");

    let stats = fake.stats();
    assert_eq!(stats.by_method["messages.list"], 2);
    assert_eq!(stats.by_method["messages.get"], 1);
    assert_eq!(stats.requests, 7);
    assert_eq!(stats.units, 5 + 5 + 1 + 5 + 2 + 100);
    assert_eq!(stats.bearer_tokens_seen, vec![access.clone()]);

    // An expired access token is refreshed with the refresh token.
    fake.expire_access_tokens();
    assert_eq!(
        client
            .get("/gmail/v1/users/me/profile", Some(&access))
            .await
            .status,
        401
    );
    let refreshed = client
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", "mailroom-test-client"),
                ("client_secret", "mailroom-test-secret"),
            ],
        )
        .await
        .json();
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    assert!(refreshed.get("refresh_token").is_none());
    assert_eq!(
        client
            .get("/gmail/v1/users/me/profile", Some(&access))
            .await
            .status,
        200
    );

    // Injected rate limits carry Retry-After and Google's body.
    fake.fail_next(1, 429, Some(2));
    let limited = client.get("/gmail/v1/users/me/labels", Some(&access)).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("2"));
    assert_eq!(
        limited.json()["error"]["errors"][0]["reason"],
        "rateLimitExceeded"
    );
    let labels = client
        .get("/gmail/v1/users/me/labels", Some(&access))
        .await
        .json();
    assert!(
        labels["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == "CATEGORY_FORUMS")
    );
    assert_eq!(fake.stats().rate_limited, 1);

    // A revoked grant: the refresh token is dead, so is the access token.
    fake.revoke_grants(ANN);
    assert_eq!(
        client
            .get("/gmail/v1/users/me/profile", Some(&access))
            .await
            .status,
        401
    );
    let dead = client
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", "mailroom-test-client"),
                ("client_secret", "mailroom-test-secret"),
            ],
        )
        .await;
    assert_eq!(dead.status, 400);
    assert_eq!(dead.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn quota_denial_and_shutdown() {
    let fake = FakeGoogle::start(Options {
        quota_units_per_second: Some(10),
        ..Options::default()
    })
    .await;
    fake.add_user(ANN);
    let client = Client::new(&fake);
    let access = sign_in(&fake, &client).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(
        client
            .get("/gmail/v1/users/me/messages", Some(&access))
            .await
            .status,
        200
    );
    assert_eq!(
        client
            .get("/gmail/v1/users/me/messages", Some(&access))
            .await
            .status,
        200
    );
    let over = client
        .get("/gmail/v1/users/me/messages", Some(&access))
        .await;
    assert_eq!(over.status, 429);
    let body = over.json();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("User-rate limit exceeded")
    );
    let stats = fake.stats();
    assert_eq!((stats.units, stats.rate_limited), (10, 1));

    fake.set_consent(Consent::Deny);
    let query = "client_id=mailroom-test-client&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&response_type=code\
        &scope=https%3A%2F%2Fmail.google.com%2F&state=z&code_challenge_method=S256\
        &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let denied = client
        .get(&format!("/o/oauth2/v2/auth?{query}"), None)
        .await;
    assert_eq!(
        denied.header("location"),
        Some("http://127.0.0.1:9/cb?error=access_denied&state=z")
    );

    drop(fake);
    assert_stops_listening(client.dialer.port()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_at_once() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<FakeGoogle>();

    let fake = FakeGoogle::start(Options::default()).await;
    fake.add_user(ANN);
    for n in 0..20 {
        fake.insert(ANN, &mail(n), &["INBOX"], 1_700_000_000_000 + i64::from(n));
    }
    let client = Arc::new(Client::new(&fake));
    let access = sign_in(&fake, &client).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let calls: Vec<_> = (0..64)
        .map(|_| {
            let (client, access) = (client.clone(), access.clone());
            tokio::spawn(async move {
                let page = client
                    .get("/gmail/v1/users/me/messages?maxResults=7", Some(&access))
                    .await;
                (
                    page.status,
                    page.json()["messages"].as_array().map(Vec::len),
                )
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), (200, Some(7)));
    }
    assert_eq!(fake.stats().by_method["messages.list"], 64);
}
