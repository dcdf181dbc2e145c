//! A Mailroom whose `google` connector talks to a [`FakeGoogle`] (see [`Provider`]).

pub use crate::mailbox::{mail, ms_days_ago};
use crate::provider::Provider;
pub use mailroom_fake_google::{Consent, FakeGoogle, Options, Stored};

/// A fake Google and a Mailroom whose `google` connector talks to it.
pub type Google = Provider<FakeGoogle>;

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
        let cert_pem = fake.cert_pem();
        Provider::beside(fake, "google", &cert_pem, |config, fake| {
            config.oauth.google = Some(mailroom::config::ProviderConfig {
                client_id: options.client_id.clone(),
                client_secret: options.client_secret.clone(),
                auth_url: Some(fake.auth_url()),
                token_url: Some(fake.token_url()),
                api_url: Some(fake.api_url()),
            });
            configure(config);
        })
        .await
    }
}

/// The fake's user.
pub const ANN: &str = "ann@gmail.test";
