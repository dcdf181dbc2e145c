//! A Mailroom whose `google` connector talks to a [`FakeGoogle`], and a browser that signs
//! accounts in through the real OAuth endpoints of both.

use crate::mailroom::{Answer, Mailroom, answer};
pub use mailroom_fake_google::{Consent, FakeGoogle, Options, Stored};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub struct Google {
    pub fake: FakeGoogle,
    pub mailroom: Mailroom,
    /// A user's browser: it trusts the fake's certificate and does not follow redirects,
    /// so each hop is checked.
    pub browser: reqwest::Client,
    /// Holds the fake's certificate, which Mailroom trusts (`ca_file`).
    _trust: tempfile::TempDir,
}

impl Google {
    /// A fake Google with the user `ann@gmail.test` and a Mailroom configured for it.
    pub async fn start(options: Options) -> Self {
        Self::start_with(options, |_| {}).await
    }

    pub async fn start_with(
        options: Options,
        configure: impl FnOnce(&mut mailroom::Config),
    ) -> Self {
        let fake = FakeGoogle::start(options.clone()).await;
        fake.add_user(ANN);
        let trust = tempfile::tempdir().expect("a temporary directory");
        let ca_file = trust.path().join("google.pem");
        std::fs::write(&ca_file, fake.cert_pem()).expect("the certificate is written");
        let mailroom = Mailroom::start(|config| {
            config.ca_file = Some(ca_file);
            config.oauth.google = Some(mailroom::config::ProviderConfig {
                client_id: options.client_id.clone(),
                client_secret: options.client_secret.clone(),
                auth_url: Some(fake.auth_url()),
                token_url: Some(fake.token_url()),
                api_url: Some(fake.api_url()),
            });
            configure(config);
        })
        .await;
        let certificate =
            reqwest::Certificate::from_pem(fake.cert_pem().as_bytes()).expect("a PEM certificate");
        let browser = reqwest::Client::builder()
            .add_root_certificate(certificate)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a browser");
        Self {
            fake,
            mailroom,
            browser,
            _trust: trust,
        }
    }

    /// Starts a sign-in as the admin: the authorization URL.
    pub async fn start_sign_in(&self, body: Value) -> String {
        let started = self.mailroom.post("/v1/oauth/google/start", body).await;
        assert_eq!(started.status, StatusCode::OK, "{}", started.body);
        started.body["authorize_url"]
            .as_str()
            .expect("authorize_url")
            .to_owned()
    }

    /// Visits the provider's authorization page: where it sends the browser back.
    pub async fn authorize(&self, authorize_url: &str) -> String {
        let page = self
            .browser
            .get(authorize_url)
            .send()
            .await
            .expect("the fake answers");
        assert_eq!(page.status(), StatusCode::FOUND, "{:?}", page.text().await);
        page.headers()["location"]
            .to_str()
            .expect("a location")
            .to_owned()
    }

    /// Follows the provider's redirect to Mailroom's callback, asking for JSON.
    pub async fn callback(&self, location: &str) -> Answer {
        answer(
            self.browser
                .get(location)
                .header("accept", "application/json"),
        )
        .await
    }

    /// A whole sign-in: start, the provider's page, the callback. The callback's answer.
    pub async fn sign_in(&self, body: Value) -> Answer {
        let url = self.start_sign_in(body).await;
        let location = self.authorize(&url).await;
        self.callback(&location).await
    }

    /// Connects ann's mailbox as a personal account and waits for its first sync.
    pub async fn connect(&self, sync_from: &str) -> String {
        let connected = self
            .sign_in(json!({"kind": "personal", "sync_from": sync_from}))
            .await;
        assert_eq!(connected.status, StatusCode::CREATED, "{}", connected.body);
        let id = connected.body["id"].as_str().expect("an id").to_owned();
        self.mailroom.sync(&id).await;
        id
    }
}

/// The fake's user.
pub const ANN: &str = "ann@gmail.test";

/// A small message.
pub fn mail(message_id: &str, subject: &str, from: &str, to: &str, days_ago: i64) -> Vec<u8> {
    let date = crate::mailbox::rfc2822_days_ago(days_ago);
    format!(
        "Message-ID: <{message_id}>\r\nDate: {date}\r\nFrom: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello about {subject}.\r\n"
    )
    .into_bytes()
}

/// Milliseconds since the epoch, `days` ago.
pub fn ms_days_ago(days: i64) -> i64 {
    (time::OffsetDateTime::now_utc() - time::Duration::days(days)).unix_timestamp() * 1000
}
