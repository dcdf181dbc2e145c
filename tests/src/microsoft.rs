//! A Mailroom whose `microsoft` connector talks to a [`FakeMicrosoft`], and a browser that
//! signs accounts in through the real OAuth endpoints of both.

use crate::browser::Browser;
use crate::mailroom::{Answer, Mailroom};
pub use mailroom_fake_microsoft::{Consent, FakeMicrosoft, Options, Stored, User};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub struct Microsoft {
    pub fake: FakeMicrosoft,
    pub mailroom: Mailroom,
    pub browser: Browser,
    /// Holds the fake's certificate, which Mailroom trusts (`ca_file`).
    _trust: tempfile::TempDir,
}

/// The fake's work account, in its directory.
pub const ANN: &str = "ann@contoso.test";

impl Microsoft {
    /// A fake Microsoft with the work account [`ANN`] and a Mailroom that signs in with
    /// `tenant = "common"`.
    pub async fn start(options: Options) -> Self {
        Self::start_with(options, "common", |_| {}).await
    }

    /// As [`Microsoft::start`], with another tenant (`organizations`, `consumers`, the
    /// fake's tenant id) and the rest of the configuration as `configure` leaves it.
    pub async fn start_with(
        options: Options,
        tenant: &str,
        configure: impl FnOnce(&mut mailroom::Config),
    ) -> Self {
        let fake = FakeMicrosoft::start(options.clone()).await;
        fake.add_user(work_user(ANN));
        let trust = tempfile::tempdir().expect("a temporary directory");
        let ca_file = trust.path().join("microsoft.pem");
        std::fs::write(&ca_file, fake.cert_pem()).expect("the certificate is written");
        let tenant = tenant.to_owned();
        let mailroom = Mailroom::start(|config| {
            config.ca_file = Some(ca_file);
            config.oauth.microsoft = Some(mailroom::config::MicrosoftConfig {
                client_id: options.client_id.clone(),
                client_secret: options.client_secret.clone(),
                tenant,
                login_url: Some(fake.login_url()),
                api_url: Some(fake.api_url()),
            });
            configure(config);
        })
        .await;
        let browser = Browser::new("microsoft", &fake.cert_pem());
        Self {
            fake,
            mailroom,
            browser,
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

/// A work account of the fake's directory whose address is its user principal name.
pub fn work_user(upn: &str) -> User {
    User {
        upn: upn.into(),
        mail: Some(upn.into()),
        display_name: upn.split('@').next().unwrap_or(upn).into(),
        personal: false,
    }
}
