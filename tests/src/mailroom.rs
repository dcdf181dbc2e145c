//! A Mailroom server for a test, in-process, with its own data directory and an API client.

use mailroom::{Bootstrap, Config, Server};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::PathBuf;

pub const ADMIN_TOKEN: &str = "mr_test_admin_token";

/// The hostile test connector, built by this crate's build script.
pub fn hostile_connector() -> PathBuf {
    PathBuf::from(env!("HOSTILE_CONNECTOR"))
}

pub struct Mailroom {
    server: Option<Server>,
    base: String,
    http: reqwest::Client,
    _data: tempfile::TempDir,
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
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            data: data.path().to_owned(),
            ..Config::default()
        };
        config.api.connection_tests_per_minute = 1000;
        config.net.connect_timeout_ms = 5_000;
        config.net.io_timeout_ms = 10_000;
        configure(&mut config);
        let setup = Bootstrap {
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            ..Bootstrap::default()
        };
        let server = Server::start(&config, &setup)
            .await
            .expect("the server starts");
        Self {
            base: format!("http://{}", server.addr()),
            server: Some(server),
            http: reqwest::Client::new(),
            _data: data,
        }
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

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

/// Sends a prepared request and reads the JSON answer.
pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a readable body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {text}"));
    Answer {
        status,
        headers,
        body,
    }
}
