//! The fake over real HTTPS with reqwest trusting only the fake's
//! certificate: the authorization code flow with PKCE at every kind of
//! tenant, then Graph's folders, delta rounds, ids, message changes,
//! sending and throttling.

use std::net::Ipv4Addr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mailroom_fake_https::oauth::{random_token, s256};
use mailroom_fake_https::request::param;
use mailroom_fake_https::testing::{
    Dialer, assert_stops_listening, code_redemption, port_of, query_of,
};
use mailroom_fake_microsoft::{Consent, FakeMicrosoft, Options, User};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const ANN: &str = "ann@contoso.test";
const BOB: &str = "bob@outlook.test";
const IMMUTABLE: &str = "IdType=\"ImmutableId\"";

fn ann() -> User {
    User {
        upn: ANN.to_owned(),
        mail: Some(ANN.to_owned()),
        display_name: "Ann Example".to_owned(),
        personal: false,
    }
}

fn bob() -> User {
    User {
        upn: BOB.to_owned(),
        mail: None,
        display_name: "Bob Example".to_owned(),
        personal: true,
    }
}

fn mail(n: u32) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.com>\r\nTo: {ANN}\r\nSubject: note {n}\r\nMessage-ID: <n{n}@example.com>\r\n\
         Date: Wed, 31 Jan 2024 09:30:00 +0000\r\n\r\nHello {n}\r\n"
    )
    .into_bytes()
}

struct Harness {
    fake: FakeMicrosoft,
    http: reqwest::Client,
}

impl Harness {
    async fn start(options: Options) -> Harness {
        let fake = FakeMicrosoft::start(options).await;
        fake.add_user(ann());
        fake.add_user(bob());
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(fake.cert_pem().as_bytes()).unwrap(),
            )
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Harness { fake, http }
    }

    /// The browser's part: the authorization request and its redirect.
    async fn authorize(&self, tenant: &str, login_hint: Option<&str>, challenge: &str) -> Response {
        let mut params = vec![
            ("client_id", "mailroom-test-client"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("response_mode", "query"),
            (
                "scope",
                "offline_access https://graph.microsoft.com/Mail.ReadWrite https://graph.microsoft.com/Mail.Send User.Read",
            ),
            ("state", "s-123"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ];
        params.extend(login_hint.map(|hint| ("login_hint", hint)));
        let url = format!(
            "{}/{tenant}/oauth2/v2.0/authorize?{}",
            self.fake.login_url(),
            serde_urlencoded::to_string(&params).unwrap()
        );
        self.http.get(url).send().await.unwrap()
    }

    async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let answer = self
            .http
            .post(format!(
                "{}/{tenant}/oauth2/v2.0/token",
                self.fake.login_url()
            ))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        (status, answer.json().await.unwrap())
    }

    /// The code flow with PKCE: the tokens.
    async fn sign_in(&self, tenant: &str, login_hint: Option<&str>) -> Value {
        let verifier = random_token("", 32);
        let challenge = s256(&verifier);
        let redirect = self.authorize(tenant, login_hint, &challenge).await;
        assert_eq!(redirect.status(), StatusCode::FOUND);
        let location = redirect.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT), "{location}");
        let params = query_of(&location);
        assert_eq!(param(&params, "state"), Some("s-123"));
        let code = param(&params, "code").unwrap().to_owned();
        let (status, tokens) = self
            .token(tenant, &code_redemption(&code, REDIRECT, &verifier))
            .await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        tokens
    }

    async fn access_token(&self, login_hint: &str) -> String {
        self.sign_in("common", Some(login_hint)).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A Graph request; `path` is under `/v1.0` or a whole URL.
    async fn graph(
        &self,
        method: Method,
        path: &str,
        token: &str,
        prefer: &[&str],
        body: Option<(&str, Vec<u8>)>,
    ) -> Response {
        let url = if path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/v1.0{path}", self.fake.api_url())
        };
        let mut request = self.http.request(method, url).bearer_auth(token);
        for preference in prefer {
            request = request.header("Prefer", *preference);
        }
        if let Some((content_type, body)) = body {
            request = request.header("Content-Type", content_type).body(body);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str, token: &str, prefer: &[&str]) -> (StatusCode, Value) {
        let answer = self.graph(Method::GET, path, token, prefer, None).await;
        let status = answer.status();
        (status, answer.json().await.unwrap())
    }

    async fn post_json(
        &self,
        path: &str,
        token: &str,
        prefer: &[&str],
        body: &Value,
    ) -> (StatusCode, Value) {
        let answer = self
            .graph(
                Method::POST,
                path,
                token,
                prefer,
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await;
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// Every page of a delta round from `url`: the entries and the deltaLink.
    async fn delta_round(
        &self,
        url: &str,
        token: &str,
        prefer: &[&str],
    ) -> (Vec<Value>, String, usize) {
        let mut url = url.to_owned();
        let mut entries = Vec::new();
        let mut pages = 0;
        loop {
            let (status, page) = self.get(&url, token, prefer).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            pages += 1;
            entries.extend(page["value"].as_array().unwrap().iter().cloned());
            if let Some(next) = page["@odata.nextLink"].as_str() {
                assert!(page.get("@odata.deltaLink").is_none());
                url = next.to_owned();
            } else {
                let delta = page["@odata.deltaLink"].as_str().unwrap().to_owned();
                return (entries, delta, pages);
            }
        }
    }
}

fn ids_of(entries: &[Value]) -> Vec<(String, bool)> {
    entries
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e.get("@removed").is_some(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_code_flow_at_every_kind_of_tenant() {
    let h = Harness::start(Options::default()).await;
    let tenant = h.fake.tenant_id();
    for (tenant, hint) in [
        ("common", ANN),
        ("common", BOB),
        ("organizations", ANN),
        (tenant.as_str(), ANN),
        ("consumers", BOB),
        ("9188040d-6c67-4c5b-b112-36a304b66dad", BOB),
    ] {
        let tokens = h.sign_in(tenant, Some(hint)).await;
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 3600);
        assert_eq!(tokens["ext_expires_in"], 3600);
        assert!(tokens["refresh_token"].is_string());
        assert_eq!(
            tokens["scope"],
            "https://graph.microsoft.com/Mail.ReadWrite https://graph.microsoft.com/Mail.Send https://graph.microsoft.com/User.Read"
        );
        let access = tokens["access_token"].as_str().unwrap();
        let (status, me) = h.get("/me", access, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["userPrincipalName"], hint, "{tenant}");
    }
    let (_, bob) = h.get("/me", &h.access_token(BOB).await, &[]).await;
    assert_eq!(bob["mail"], Value::Null);
    assert_eq!(bob["displayName"], "Bob Example");
    assert_eq!(h.fake.tokens_issued(), 7);

    // Without a hint, the last account added signs in.
    let tokens = h.sign_in("common", None).await;
    let (_, me) = h
        .get("/me", tokens["access_token"].as_str().unwrap(), &[])
        .await;
    assert_eq!(me["userPrincipalName"], BOB);

    let challenge = s256("unused verifier");
    for (tenant, hint, code) in [
        ("organizations", BOB, "AADSTS50020"),
        (tenant.as_str(), BOB, "AADSTS50020"),
        ("consumers", ANN, "AADSTS50020"),
        ("contoso.example", ANN, "AADSTS90002"),
    ] {
        let page = h.authorize(tenant, Some(hint), &challenge).await;
        assert_eq!(page.status(), StatusCode::BAD_REQUEST, "{tenant} {hint}");
        assert!(page.text().await.unwrap().contains(code), "{tenant} {hint}");
    }

    h.fake.set_consent(ANN, Consent::Deny);
    let denied = h.authorize("common", Some(ANN), &challenge).await;
    assert_eq!(denied.status(), StatusCode::FOUND);
    let params = query_of(denied.headers()["location"].to_str().unwrap());
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert!(
        param(&params, "error_description")
            .unwrap()
            .starts_with("AADSTS65004")
    );
    assert_eq!(param(&params, "state"), Some("s-123"));
    h.fake.set_consent(ANN, Consent::Grant);
    h.sign_in("common", Some(ANN)).await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_revoked_grants_die() {
    let h = Harness::start(Options::default()).await;
    let tokens = h.sign_in("organizations", Some(ANN)).await;
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String, secret: &'static str| {
        let h = &h;
        async move {
            h.token(
                "organizations",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("client_id", "mailroom-test-client"),
                    ("client_secret", secret),
                    ("scope", "offline_access Mail.ReadWrite"),
                ],
            )
            .await
        }
    };
    let (status, renewed) = refresh(first.clone(), "mailroom-test-secret").await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let second = renewed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let access = renewed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(h.get("/me", &access, &[]).await.0, StatusCode::OK);

    let (status, retired) = refresh(first, "mailroom-test-secret").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(retired["error"], "invalid_grant");
    assert_eq!(retired["error_codes"], json!([70008]));
    assert!(
        retired["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS70008: ")
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(retired[field].is_string(), "{field}");
    }

    let (status, wrong) = refresh(second.clone(), "not-the-secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong["error"], "invalid_client");
    assert_eq!(wrong["error_codes"], json!([7000215]));

    // Expired access tokens are 401; a refresh mends it.
    h.fake.expire_access_tokens();
    let (status, expired) = h.get("/me", &access, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired["error"]["code"], "InvalidAuthenticationToken");
    let (status, renewed) = refresh(second, "mailroom-test-secret").await;
    assert_eq!(status, StatusCode::OK);
    let third = renewed["refresh_token"].as_str().unwrap().to_owned();
    let access = renewed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(h.get("/me", &access, &[]).await.0, StatusCode::OK);

    h.fake.revoke_grants(ANN);
    let (status, revoked) = refresh(third, "mailroom-test-secret").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(revoked["error"], "invalid_grant");
    assert_eq!(revoked["error_codes"], json!([50173]));
    // The access token already issued lives out its hour.
    assert_eq!(h.get("/me", &access, &[]).await.0, StatusCode::OK);
    assert_eq!(h.fake.stats().token_requests, 6);
    assert_eq!(h.fake.tokens_issued(), 3);
}

#[tokio::test]
async fn folders_top_level_hidden_and_children() {
    let h = Harness::start(Options::default()).await;
    let access = h.access_token(ANN).await;
    let projects = h.fake.add_folder(ANN, None, "Projects", false);
    let secret = h.fake.add_folder(ANN, None, "Secret", true);
    let alpha = h.fake.add_folder(ANN, Some(&projects), "Alpha", false);
    h.fake
        .insert(ANN, &alpha, &mail(1), 1_700_000_000_000, false);

    let (status, first) = h.get("/me/mailFolders?$top=4", &access, &[]).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let mut names: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        names.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["displayName"].as_str().unwrap().to_owned()),
        );
        match page["@odata.nextLink"].as_str() {
            Some(next) => page = h.get(next, &access, &[]).await.1,
            None => break,
        }
    }
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
            "Projects",
            "Sent Items",
            "Sync Issues"
        ]
    );
    // The default page is 10, so all of them fit, with the hidden one 11 do not.
    let (_, all) = h
        .get("/me/mailFolders?includeHiddenFolders=true", &access, &[])
        .await;
    assert_eq!(all["value"].as_array().unwrap().len(), 10);
    let next = all["@odata.nextLink"].as_str().unwrap();
    let (_, rest) = h.get(next, &access, &[]).await;
    assert_eq!(rest["value"][0]["displayName"], "Sync Issues");
    let hidden = all["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == secret.as_str())
        .unwrap();
    assert_eq!(hidden["isHidden"], true);

    let (_, sync) = h
        .get("/me/mailFolders/syncissues/childFolders", &access, &[])
        .await;
    let children: Vec<&str> = sync["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["Conflicts", "Local Failures", "Server Failures"]);

    let (_, folder) = h
        .get(&format!("/me/mailFolders/{projects}"), &access, &[])
        .await;
    assert_eq!(folder["childFolderCount"], 1);
    assert_eq!(
        folder["parentFolderId"],
        h.fake.folder_id(ANN, "msgfolderroot")
    );
    let (_, child) = h
        .get(
            &format!("/me/mailFolders/{projects}/childFolders"),
            &access,
            &[],
        )
        .await;
    assert_eq!(child["value"][0]["id"], alpha.as_str());
    assert_eq!(child["value"][0]["totalItemCount"], 1);
    assert_eq!(child["value"][0]["unreadItemCount"], 1);
    let (_, inbox) = h.get("/me/mailFolders/Inbox", &access, &[]).await;
    assert_eq!(inbox["id"], h.fake.folder_id(ANN, "inbox"));
    let elsewhere = h.fake.folder_id(BOB, "inbox");
    let (status, missing) = h
        .get(&format!("/me/mailFolders/{elsewhere}"), &access, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"]["code"], "ErrorItemNotFound");

    let stats = h.fake.stats();
    assert_eq!(stats.by_route["GET /me/mailFolders"], 5);
    assert_eq!(stats.by_route["GET /me/mailFolders/{id}/childFolders"], 2);
}

#[tokio::test]
async fn delta_rounds_page_then_report_changes() {
    let h = Harness::start(Options::default()).await;
    let access = h.access_token(ANN).await;
    let inbox = h.fake.folder_id(ANN, "inbox");
    let archive = h.fake.folder_id(ANN, "archive");
    let ids: Vec<String> = (1..=5)
        .map(|n| {
            h.fake.insert(
                ANN,
                "inbox",
                &mail(n),
                1_700_000_000_000 + i64::from(n) * 60_000,
                false,
            )
        })
        .collect();
    h.fake
        .insert(ANN, "archive", &mail(99), 1_700_000_000_000, false);
    let prefer = ["odata.maxpagesize=2", IMMUTABLE];
    let start = "/me/mailFolders/inbox/messages/delta?$select=subject,isRead,receivedDateTime,flag,parentFolderId,internetMessageId,isDraft";

    // The first page's links are absolute, and a link answers the same twice.
    let (status, first) = h.get(start, &access, &prefer).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["value"].as_array().unwrap().len(), 2);
    let next = first["@odata.nextLink"].as_str().unwrap().to_owned();
    assert!(next.starts_with(&format!(
        "{}/v1.0/me/mailFolders/{inbox}/messages/delta?$skiptoken=",
        h.fake.api_url()
    )));
    let (_, again) = h.get(&next, &access, &prefer).await;
    let (_, once_more) = h.get(&next, &access, &prefer).await;
    assert_eq!(again, once_more);

    let (entries, delta, pages) = h.delta_round(start, &access, &prefer).await;
    assert_eq!(pages, 3);
    assert_eq!(
        ids_of(&entries),
        ids.iter().map(|id| (id.clone(), false)).collect::<Vec<_>>()
    );
    let entry = &entries[0];
    assert_eq!(entry["subject"], "note 1");
    assert_eq!(entry["isRead"], false);
    assert_eq!(entry["isDraft"], false);
    assert_eq!(entry["flag"]["flagStatus"], "notFlagged");
    assert_eq!(entry["parentFolderId"], inbox.as_str());
    assert_eq!(entry["internetMessageId"], "<n1@example.com>");
    assert_eq!(entry["receivedDateTime"], "2023-11-14T22:14:20Z");
    assert!(entry.get("bodyPreview").is_none());
    assert!(delta.contains("$deltatoken="));

    // Newest first with a filter.
    let newest = "/me/mailFolders/inbox/messages/delta?$select=subject&$filter=receivedDateTime%20ge%202023-11-14T22:16:20Z&$orderby=receivedDateTime%20desc";
    let (filtered, _, _) = h.delta_round(newest, &access, &prefer).await;
    let subjects: Vec<&str> = filtered
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["note 5", "note 4", "note 3"]);

    // Nothing changed: nothing reported.
    let (none, delta, _) = h.delta_round(&delta, &access, &prefer).await;
    assert!(none.is_empty());

    h.fake.set_read(ANN, &ids[0], true);
    h.fake.set_flagged(ANN, &ids[1], true);
    h.fake.move_to(ANN, &ids[2], &archive);
    h.fake.purge(ANN, &ids[3]);
    h.fake.delete(ANN, &ids[4]);
    let newcomer = h
        .fake
        .insert(ANN, &inbox, &mail(6), 1_700_000_900_000, false);
    let (changes, delta, _) = h.delta_round(&delta, &access, &prefer).await;
    assert_eq!(
        ids_of(&changes),
        [
            (ids[0].clone(), false),
            (ids[1].clone(), false),
            (ids[2].clone(), true),
            (ids[3].clone(), true),
            (ids[4].clone(), true),
            (newcomer.clone(), false),
        ]
    );
    assert_eq!(changes[0]["isRead"], true);
    assert_eq!(changes[1]["flag"]["flagStatus"], "flagged");
    assert_eq!(changes[2]["@removed"], json!({ "reason": "deleted" }));
    assert_eq!(changes[2]["@odata.type"], "#microsoft.graph.message");
    assert_eq!(changes[5]["subject"], "note 6");
    assert_eq!(
        h.fake.message(ANN, &ids[4]).unwrap().folder_id,
        h.fake.folder_id(ANN, "deleteditems")
    );
    assert!(h.fake.message(ANN, &ids[3]).is_none());

    // The archive's first round has the moved message, under the same immutable id.
    let (archived, _, _) = h
        .delta_round(
            &format!("/me/mailFolders/{archive}/messages/delta?$select=subject"),
            &access,
            &prefer,
        )
        .await;
    assert!(ids_of(&archived).contains(&(ids[2].clone(), false)));

    // Expired tokens are gone: 410 with a place to start over.
    h.fake.expire_delta_tokens(ANN);
    let (status, gone) = h.get(&delta, &access, &prefer).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(gone["error"]["code"], "syncStateNotFound");
    let gone = h.graph(Method::GET, &delta, &access, &prefer, None).await;
    let location = gone.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!(
        "{}/v1.0/me/mailFolders/{inbox}/messages/delta?",
        h.fake.api_url()
    )));
    let (restarted, _, _) = h.delta_round(&location, &access, &prefer).await;
    assert_eq!(restarted.len(), 3);
    assert_eq!(h.get(&next, &access, &prefer).await.0, StatusCode::GONE);

    let stats = h.fake.stats();
    assert_eq!(stats.without_immutable_prefer, 0);
    assert!(stats.by_route["GET /me/mailFolders/{id}/messages/delta"] >= 14);
}

#[tokio::test]
async fn immutable_and_regular_ids_across_a_move() {
    let h = Harness::start(Options::default()).await;
    let access = h.access_token(ANN).await;
    let immutable = h
        .fake
        .insert(ANN, "inbox", &mail(1), 1_700_000_000_000, false);

    let (_, regular_view) = h
        .get(
            &format!("/me/messages/{immutable}?$select=subject"),
            &access,
            &[],
        )
        .await;
    let regular = regular_view["id"].as_str().unwrap().to_owned();
    assert_ne!(regular, immutable);
    let (_, immutable_view) = h
        .get(
            &format!("/me/messages/{regular}?$select=subject"),
            &access,
            &[IMMUTABLE],
        )
        .await;
    assert_eq!(immutable_view["id"], immutable.as_str());

    // A move through the API answers 201 with the message in its new folder.
    let (status, moved) = h
        .post_json(
            &format!("/me/messages/{regular}/move"),
            &access,
            &[],
            &json!({ "destinationId": "archive" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let moved_regular = moved["id"].as_str().unwrap().to_owned();
    assert_ne!(moved_regular, regular);
    assert_eq!(moved["parentFolderId"], h.fake.folder_id(ANN, "archive"));
    let (status, stale) = h
        .get(&format!("/me/messages/{regular}"), &access, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(stale["error"]["code"], "ErrorItemNotFound");
    assert!(stale["error"]["innerError"]["request-id"].is_string());
    assert!(stale["error"]["innerError"]["date"].is_string());
    assert_eq!(
        h.get(&format!("/me/messages/{moved_regular}"), &access, &[])
            .await
            .0,
        StatusCode::OK
    );

    // A move by another client changes the regular id too; the immutable one stays.
    h.fake.move_to(ANN, &immutable, "inbox");
    assert_eq!(
        h.get(&format!("/me/messages/{moved_regular}"), &access, &[])
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, same) = h
        .get(
            &format!("/me/messages/{immutable}"),
            &access,
            &["odata.maxpagesize=5, IdType=\"ImmutableId\""],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same["id"], immutable.as_str());
    assert_eq!(same["parentFolderId"], h.fake.folder_id(ANN, "inbox"));
    assert_eq!(
        h.fake.message(ANN, &immutable).unwrap().folder_id,
        h.fake.folder_id(ANN, "inbox")
    );

    let stats = h.fake.stats();
    assert_eq!(stats.requests, 7);
    assert_eq!(stats.without_immutable_prefer, 5);
    assert_eq!(stats.by_route["GET /me/messages/{id}"], 6);
    assert_eq!(stats.by_route["POST /me/messages/{id}/move"], 1);
    assert_eq!(stats.bearer_tokens_seen.len(), 1);
    h.fake.reset_stats();
    assert_eq!(h.fake.stats(), Default::default());
}

#[tokio::test]
async fn value_update_and_deletes() {
    let h = Harness::start(Options::default()).await;
    let access = h.access_token(ANN).await;
    let id = h
        .fake
        .insert(ANN, "inbox", &mail(1), 1_700_000_000_000, false);
    let other = h
        .fake
        .insert(ANN, "inbox", &mail(2), 1_700_000_000_000, true);

    let raw = h
        .graph(
            Method::GET,
            &format!("/me/messages/{id}/$value"),
            &access,
            &[IMMUTABLE],
            None,
        )
        .await;
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(raw.bytes().await.unwrap().as_ref(), mail(1).as_slice());
    assert_eq!(h.fake.stats().value_downloads, 1);

    let patch = |body: Value| {
        let h = &h;
        let access = access.clone();
        let id = id.clone();
        async move {
            let answer = h
                .graph(
                    Method::PATCH,
                    &format!("/me/messages/{id}"),
                    &access,
                    &[IMMUTABLE],
                    Some(("application/json", body.to_string().into_bytes())),
                )
                .await;
            let status = answer.status();
            (status, answer.json::<Value>().await.unwrap())
        }
    };
    let (status, updated) =
        patch(json!({ "isRead": true, "flag": { "flagStatus": "flagged" } })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            updated["isRead"].clone(),
            updated["flag"]["flagStatus"].clone()
        ),
        (json!(true), json!("flagged"))
    );
    let stored = h.fake.message(ANN, &id).unwrap();
    assert!(stored.is_read && stored.flagged);
    assert_eq!(stored.subject.as_deref(), Some("note 1"));
    assert_eq!(
        patch(json!({ "flag": { "flagStatus": "complete" } }))
            .await
            .1["flag"]["flagStatus"],
        "complete"
    );
    assert!(!h.fake.message(ANN, &id).unwrap().flagged);
    assert_eq!(
        patch(json!({ "flag": { "flagStatus": "waving" } })).await.0,
        StatusCode::BAD_REQUEST
    );

    let deleted = h
        .graph(
            Method::POST,
            &format!("/me/messages/{id}/permanentDelete"),
            &access,
            &[IMMUTABLE],
            None,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(h.fake.message(ANN, &id).is_none());
    assert_eq!(
        h.get(&format!("/me/messages/{id}"), &access, &[IMMUTABLE])
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let soft = h
        .graph(
            Method::DELETE,
            &format!("/me/messages/{other}"),
            &access,
            &[IMMUTABLE],
            None,
        )
        .await;
    assert_eq!(soft.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        h.fake.message(ANN, &other).unwrap().folder_id,
        h.fake.folder_id(ANN, "recoverableitemsdeletions")
    );
    let (_, inbox) = h.get("/me/mailFolders/inbox", &access, &[]).await;
    assert_eq!(inbox["totalItemCount"], 0);
}

#[tokio::test]
async fn send_mail_and_create_from_mime() {
    let h = Harness::start(Options::default()).await;
    let access = h.access_token(ANN).await;
    let message = mail(7);
    let encoded = STANDARD.encode(&message);
    let sent = h
        .graph(
            Method::POST,
            "/me/sendMail",
            &access,
            &[IMMUTABLE],
            Some(("text/plain", encoded.clone().into_bytes())),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    assert!(sent.bytes().await.unwrap().is_empty());
    assert_eq!(h.fake.sent(ANN), vec![message.clone()]);
    let copies = h.fake.messages(ANN);
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].folder_id, h.fake.folder_id(ANN, "sentitems"));
    assert!(copies[0].is_read && !copies[0].is_draft);
    assert_eq!(
        copies[0].internet_message_id.as_deref(),
        Some("<n7@example.com>")
    );

    let bad = h
        .graph(
            Method::POST,
            "/me/sendMail",
            &access,
            &[IMMUTABLE],
            Some(("text/plain", b"***".to_vec())),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"]["code"],
        "ErrorMimeContentInvalidBase64String"
    );
    assert_eq!(h.fake.sent(ANN).len(), 1);

    // Wrapped base64, as MIME encoders write it, creates a draft.
    let wrapped: String = encoded
        .as_bytes()
        .chunks(76)
        .map(|line| format!("{}\r\n", String::from_utf8_lossy(line)))
        .collect();
    let created = h
        .graph(
            Method::POST,
            "/me/mailFolders/drafts/messages",
            &access,
            &[IMMUTABLE],
            Some(("text/plain", wrapped.into_bytes())),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["isDraft"], true);
    assert_eq!(created["subject"], "note 7");
    assert_eq!(created["parentFolderId"], h.fake.folder_id(ANN, "drafts"));
    let stored = h
        .fake
        .message(ANN, created["id"].as_str().unwrap())
        .unwrap();
    assert!(stored.is_draft);
    assert_eq!(stored.raw, message);
}

#[tokio::test]
async fn errors_and_throttling() {
    let h = Harness::start(Options {
        requests_per_ten_minutes: Some(4),
        ..Options::default()
    })
    .await;
    let access = h.access_token(ANN).await;

    let anonymous = h
        .http
        .get(format!("{}/v1.0/me", h.fake.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    assert!(anonymous.headers().contains_key("request-id"));
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    h.fake.fail_next(1, 429, Some(2));
    let injected = h
        .graph(Method::GET, "/me", &access, &[IMMUTABLE], None)
        .await;
    assert_eq!(injected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(injected.headers()["retry-after"], "2");
    assert!(injected.json::<Value>().await.unwrap()["error"]["code"].is_string());
    h.fake.fail_next(1, 503, Some(1));
    let unavailable = h
        .graph(Method::GET, "/me", &access, &[IMMUTABLE], None)
        .await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.headers()["retry-after"], "1");

    for _ in 0..4 {
        assert_eq!(h.get("/me", &access, &[IMMUTABLE]).await.0, StatusCode::OK);
    }
    let over = h
        .graph(Method::GET, "/me", &access, &[IMMUTABLE], None)
        .await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u32 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&wait), "{wait}");
    assert_eq!(
        over.json::<Value>().await.unwrap()["error"]["code"],
        "ApplicationThrottled"
    );
    // Another mailbox has a window of its own.
    let bobs = h.access_token(BOB).await;
    assert_eq!(h.get("/me", &bobs, &[IMMUTABLE]).await.0, StatusCode::OK);
    assert_eq!(h.fake.stats().throttled, 2);
}

/// Writes a request head promising a body it does not send, so the request
/// stays in flight until the connection closes.
async fn open_request(fake: &FakeMicrosoft, token: &str) -> impl AsyncRead + AsyncWrite + Unpin {
    let port = port_of(&fake.api_url());
    let mut tls = Dialer::new(port, &fake.cert_pem()).connect().await;
    let head = format!(
        "PATCH /v1.0/me/messages/AAkALgAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    tls
}

#[tokio::test]
async fn concurrency_is_limited_per_mailbox() {
    let h = Harness::start(Options {
        concurrent_requests: Some(2),
        ..Options::default()
    })
    .await;
    let access = h.access_token(ANN).await;
    let first = open_request(&h.fake, &access).await;
    let mut second = open_request(&h.fake, &access).await;
    // Wait until both are admitted.
    for _ in 0..100 {
        if h.fake.stats().max_in_flight == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.fake.stats().max_in_flight, 2);
    let refused = h
        .graph(Method::GET, "/me", &access, &[IMMUTABLE], None)
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["message"],
        "Application is over its MailboxConcurrency limit."
    );
    // Another mailbox is not affected.
    let bobs = h.access_token(BOB).await;
    assert_eq!(h.get("/me", &bobs, &[IMMUTABLE]).await.0, StatusCode::OK);

    // Finishing one request frees its place.
    second.write_all(&[b' '; 99]).await.unwrap();
    second.flush().await.unwrap();
    let mut answer = vec![0; 12];
    second.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 404");
    drop(second);
    let mut admitted = false;
    for _ in 0..100 {
        if h.get("/me", &access, &[IMMUTABLE]).await.0 == StatusCode::OK {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(admitted);
    drop(first);
    assert_eq!(h.fake.stats().max_in_flight, 2);
    assert!(h.fake.stats().throttled >= 1);
}

#[tokio::test]
async fn serves_until_the_last_handle_is_dropped() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<FakeMicrosoft>();
    let fake = FakeMicrosoft::start(Options::default()).await;
    let port = port_of(&fake.login_url());
    let clone = fake.clone();
    drop(fake);
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_ok()
    );
    drop(clone);
    assert_stops_listening(port).await;
}
