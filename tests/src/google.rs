//! A Mailroom whose `google` connector talks to a [`FakeGoogle`], and a browser that signs
//! accounts in through the real OAuth endpoints of both.

use crate::browser::Browser;
pub use crate::mailbox::{mail, ms_days_ago};
use crate::mailroom::{Answer, Mailroom};
pub use mailroom_fake_google::{Consent, FakeGoogle, Options, Stored};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub struct Google {
    pub fake: FakeGoogle,
    pub mailroom: Mailroom,
    pub browser: Browser,
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
        let browser = Browser::new("google", &fake.cert_pem());
        Self {
            fake,
            mailroom,
            browser,
            _trust: trust,
        }
    }

    /// Starts a sign-in as the admin: the authorization URL.
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
