//! A Mailroom whose OAuth connector talks to a fake provider ([`Provider`]), and a user's
//! browser ([`Browser`]) signing accounts in through the real OAuth endpoints of both: it
//! trusts the fake's certificate and does not follow redirects, so each step can be looked
//! at. `google` and `microsoft` start one for each fake.

use crate::mailroom::{Answer, Mailroom, answer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A fake provider `F`, a Mailroom configured for it, and a browser.
pub struct Provider<F> {
    pub fake: F,
    pub mailroom: Mailroom,
    pub browser: Browser,
    /// Holds the fake's certificate, which Mailroom trusts (`ca_file`).
    _trust: tempfile::TempDir,
}

impl<F> Provider<F> {
    /// Starts a Mailroom that trusts `cert_pem`, configured by `configure` (which gets the
    /// configuration and the certificate's file), beside `fake`.
    pub async fn beside(
        fake: F,
        connector: &'static str,
        cert_pem: &str,
        configure: impl FnOnce(&mut mailroom::Config, &F),
    ) -> Self {
        let trust = tempfile::tempdir().expect("a temporary directory");
        let ca_file = trust.path().join(format!("{connector}.pem"));
        std::fs::write(&ca_file, cert_pem).expect("the certificate is written");
        let mailroom = Mailroom::start(|config| {
            config.ca_file = Some(ca_file);
            configure(config, &fake);
        })
        .await;
        Self {
            fake,
            mailroom,
            browser: Browser::new(connector, cert_pem),
            _trust: trust,
        }
    }

    pub async fn start_sign_in(&self, body: Value) -> String {
        self.browser.start_sign_in(&self.mailroom, body).await
    }

    pub async fn authorize(&self, authorize_url: &str) -> String {
        self.browser.authorize(authorize_url).await
    }

    pub async fn callback(&self, location: &str) -> Answer {
        self.browser.callback(location).await
    }

    pub async fn sign_in(&self, body: Value) -> Answer {
        self.browser.sign_in(&self.mailroom, body).await
    }

    /// Signs the consenting user in as a personal account syncing from `sync_from`, and
    /// waits for its first sync.
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

pub struct Browser {
    pub client: reqwest::Client,
    /// The connector whose provider signs in (`google`, `microsoft`).
    connector: &'static str,
}

impl Browser {
    pub fn new(connector: &'static str, cert_pem: &str) -> Self {
        let certificate =
            reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("a PEM certificate");
        let client = reqwest::Client::builder()
            .add_root_certificate(certificate)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a browser");
        Self { client, connector }
    }

    /// `POST /v1/oauth/{connector}/start`: the provider's authorization URL.
    pub async fn start_sign_in(&self, mailroom: &Mailroom, body: Value) -> String {
        let started = mailroom
            .post(&format!("/v1/oauth/{}/start", self.connector), body)
            .await;
        assert_eq!(started.status, StatusCode::OK, "{}", started.body);
        started.body["authorize_url"]
            .as_str()
            .expect("authorize_url")
            .to_owned()
    }

    /// The provider's page: where it sends the browser back.
    pub async fn authorize(&self, authorize_url: &str) -> String {
        let page = self
            .client
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

    /// Mailroom's callback, asked for JSON.
    pub async fn callback(&self, location: &str) -> Answer {
        answer(
            self.client
                .get(location)
                .header("accept", "application/json"),
        )
        .await
    }

    /// The whole sign-in: start, the provider's consent, the callback.
    pub async fn sign_in(&self, mailroom: &Mailroom, body: Value) -> Answer {
        let url = self.start_sign_in(mailroom, body).await;
        let location = self.authorize(&url).await;
        self.callback(&location).await
    }
}
