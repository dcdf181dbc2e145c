//! A Mailroom server for a test, in-process, with its own data directory and an API client.

use mailroom::{Bootstrap, Config, Server};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::PathBuf;

pub const ADMIN_TOKEN: &str = "mr_test_admin_token";
/// The CRM's service token (`MAILROOM_SERVICE_TOKEN`).
pub const SERVICE_TOKEN: &str = "mr_test_service_token";

/// The hostile test connector, built by this crate's build script.
pub fn hostile_connector() -> PathBuf {
    PathBuf::from(env!("HOSTILE_CONNECTOR"))
}

/// The hostile syncing test connector, built by this crate's build script.
pub fn hostile_sync_connector() -> PathBuf {
    PathBuf::from(env!("HOSTILE_SYNC_CONNECTOR"))
}

/// The HTTP probe test connector (world 0.5.0), built by this crate's build script.
pub fn http_probe_connector() -> PathBuf {
    PathBuf::from(env!("HTTP_PROBE_CONNECTOR"))
}

pub struct Mailroom {
    server: Option<Server>,
    api: Api,
    config: Config,
    data: tempfile::TempDir,
}

/// A client of a Mailroom's API, wherever the server runs.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl std::ops::Deref for Mailroom {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A response: its status, headers and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Mailroom {
    /// Starts a server with a default test configuration, changed by `configure`.
    pub async fn start(configure: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().expect("cannot create a data directory");
        let mut config = test_config(data.path());
        configure(&mut config);
        let server = Self::launch(&config).await;
        Self {
            api: Api::new(&format!("http://{}", server.addr())),
            server: Some(server),
            config,
            data,
        }
    }

    async fn launch(config: &Config) -> Server {
        launch(config).await
    }

    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart(mut self) -> Self {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let server = Self::launch(&self.config).await;
        self.api = Api::new(&format!("http://{}", server.addr()));
        self.server = Some(server);
        self
    }

    /// Stops the server, lets `change` do what it will to its data directory (behind its
    /// back), and starts a new one there.
    pub async fn restart_after<F: std::future::Future<Output = ()>>(
        &mut self,
        change: impl FnOnce(std::path::PathBuf) -> F,
    ) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        change(self.data.path().to_owned()).await;
        let server = Self::launch(&self.config).await;
        self.api = Api::new(&format!("http://{}", server.addr()));
        self.server = Some(server);
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

impl Api {
    /// A client of the API at `base` (`http://host:port`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request with `token`, acting as `act_as` when given.
    pub async fn call_as(
        &self,
        token: &str,
        act_as: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(user) = act_as {
            request = request.header("x-mailroom-user", user);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request as the admin.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request).await
    }

    /// Uploads a connector's component as the admin (`POST /v1/connectors`).
    pub async fn upload_connector(&self, component: Vec<u8>, replace: bool) -> Answer {
        let path = if replace {
            "/v1/connectors?replace=true"
        } else {
            "/v1/connectors"
        };
        let request = self
            .http
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/wasm")
            .body(component);
        answer(request).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates a member user (as the admin); returns its id.
    pub async fn create_member(&self, name: &str, email: &str) -> String {
        let created = self
            .post(
                "/v1/users",
                serde_json::json!({"name": name, "email": email, "role": "member"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        created.body["id"].as_str().expect("an id").to_owned()
    }

    /// Asks for a sync of the account and waits until a job that started after the request
    /// has caught up (`last_sync_at >= requested_at`); returns the account.
    pub async fn sync(&self, account_id: &str) -> Value {
        let requested = self
            .post(&format!("/v1/accounts/{account_id}/sync"), Value::Null)
            .await;
        assert_eq!(requested.status, StatusCode::ACCEPTED, "{}", requested.body);
        let requested_at = requested.body["requested_at"]
            .as_str()
            .expect("requested_at")
            .to_owned();
        self.wait_for_sync(account_id, &requested_at).await
    }

    /// Waits until the account's `last_sync_at` is at or after `since`.
    pub async fn wait_for_sync(&self, account_id: &str, since: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let account = self.get(&format!("/v1/accounts/{account_id}")).await;
            assert_eq!(account.status, StatusCode::OK, "{}", account.body);
            if account.body["last_sync_at"]
                .as_str()
                .is_some_and(|at| at >= since)
            {
                return account.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no sync caught up within 60 s: {}",
                account.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Asks for a sync of the account and waits until it is in `state` (a job failed,
    /// say), for at most `limit`; returns the account.
    pub async fn sync_until_state(
        &self,
        account_id: &str,
        state: &str,
        limit: std::time::Duration,
    ) -> Value {
        let requested = self
            .post(&format!("/v1/accounts/{account_id}/sync"), Value::Null)
            .await;
        assert_eq!(requested.status, StatusCode::ACCEPTED, "{}", requested.body);
        self.wait_for_state(account_id, state, limit).await
    }

    /// Waits until the account is in `state`, for at most `limit`; returns the account.
    pub async fn wait_for_state(
        &self,
        account_id: &str,
        state: &str,
        limit: std::time::Duration,
    ) -> Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let account = self.get(&format!("/v1/accounts/{account_id}")).await;
            assert_eq!(account.status, StatusCode::OK, "{}", account.body);
            if account.body["state"] == state {
                return account.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not {state} within {limit:?}: {}",
                account.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Waits until the outbox entry is `sent` (failing on `failed`); returns it.
    pub async fn wait_until_sent(&self, outbox_id: &str) -> Value {
        self.wait_for_outbox(outbox_id, "sent").await
    }

    /// Waits until the outbox entry ends `sent` or `failed`, as `state` says (failing when it
    /// ends the other way); returns it.
    pub async fn wait_for_outbox(&self, outbox_id: &str, state: &str) -> Value {
        let entry = self.wait_for_outbox_end(outbox_id).await;
        assert_eq!(entry["state"], state, "not {state}: {entry}");
        entry
    }

    /// Waits until the outbox entry ends, `sent` or `failed`; returns it.
    pub async fn wait_for_outbox_end(&self, outbox_id: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let entry = self.get(&format!("/v1/outbox/{outbox_id}")).await;
            assert_eq!(entry.status, StatusCode::OK, "{}", entry.body);
            if ["sent", "failed"].contains(&entry.body["state"].as_str().unwrap_or("")) {
                return entry.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not sent or failed within 60 s: {}",
                entry.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Signs the admin's mail with `signature`, replies from `account` to `original` (a
    /// message as the API lists it) and waits until the reply is sent; returns the outbox
    /// entry.
    pub async fn reply_signed(&self, account: &str, original: &Value, signature: &str) -> Value {
        let signed = self
            .call(
                Method::PATCH,
                "/v1/me",
                Some(serde_json::json!({"signature": signature})),
            )
            .await;
        assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
        let sent = self
            .post(
                &format!("/v1/accounts/{account}/send"),
                serde_json::json!({"to": [{"email": "carol@example.test"}],
                                   "in_reply_to": original["id"], "text": "Thanks, Carol."}),
            )
            .await;
        assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
        self.wait_until_sent(sent.body["outbox_id"].as_str().expect("an outbox id"))
            .await
    }

    /// Every message of the account the API lists (all pages), newest first.
    pub async fn messages(&self, account_id: &str, filter: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(&format!(
                    "/v1/accounts/{account_id}/messages?limit=500&cursor={cursor}{filter}"
                ))
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            items.extend(
                page.body["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .cloned(),
            );
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return items,
            }
        }
    }

    /// The id of the account's folder named `name`.
    pub async fn folder_id(&self, account: &str, name: &str) -> String {
        let folders = self.get(&format!("/v1/accounts/{account}/folders")).await;
        folders.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no folder {name}: {}", folders.body))["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// The configuration tests start from: loopback on a free port, `data` as the data
/// directory, short network timeouts, no rate limit to speak of, and no push (jobs run when
/// a test asks; the push tests turn it on). With `MAILROOM_TEST_STORE=postgres`, the state
/// is in a database of the tests' own PostgreSQL, one for each data directory.
pub fn test_config(data: &std::path::Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        data: data.to_owned(),
        ..Config::default()
    };
    config.api.connection_tests_per_minute = 1000;
    config.net.connect_timeout_ms = 5_000;
    config.net.io_timeout_ms = 10_000;
    config.push.enabled = false;
    config.push.check_secs.clear();
    if crate::postgres::selected() {
        config.store.backend = mailroom::config::StoreBackend::Postgres;
        config.store.postgres.url = Some(crate::postgres::database_for(data));
        config.store.postgres.pool_size = 8;
        // A server killed by a test hands its accounts to the next within seconds.
        config.store.postgres.lease_secs = 6;
    }
    config
}

/// A secret key (base64 of 32 bytes) for servers that must share one, such as the nodes
/// of one database.
pub const SHARED_KEY: &str = "bWFpbHJvb20tdGVzdC1zaGFyZWQta2V5LTMyYnl0ZXM=";

/// The test tokens, and `secret_key` when given (otherwise the data directory's key).
pub fn bootstrap(secret_key: Option<&str>) -> Bootstrap {
    Bootstrap {
        admin_token: Some(ADMIN_TOKEN.to_owned()),
        service_token: Some(SERVICE_TOKEN.to_owned()),
        secret_key: secret_key.map(str::to_owned),
    }
}

/// Starts a server with the test tokens.
pub async fn launch(config: &Config) -> Server {
    Server::start(config, &bootstrap(None))
        .await
        .expect("the server starts")
}

/// Sends a prepared request and reads the JSON answer.
pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a readable body");
    // 204 has no body; everything else is JSON.
    let body = if text.is_empty() && status == StatusCode::NO_CONTENT {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("the body is not JSON ({e}): {text}"))
    };
    Answer {
        status,
        headers,
        body,
    }
}
