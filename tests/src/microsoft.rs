//! A Mailroom whose `microsoft` connector talks to a [`FakeMicrosoft`] (see [`Provider`]).

use crate::provider::Provider;
pub use mailroom_fake_microsoft::{Consent, FakeMicrosoft, Options, Stored, User};

/// A fake Microsoft and a Mailroom whose `microsoft` connector talks to it.
pub type Microsoft = Provider<FakeMicrosoft>;

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
        let cert_pem = fake.cert_pem();
        Provider::beside(fake, "microsoft", &cert_pem, |config, fake| {
            config.oauth.microsoft = Some(mailroom::config::MicrosoftConfig {
                client_id: options.client_id.clone(),
                client_secret: options.client_secret.clone(),
                tenant: tenant.to_owned(),
                login_url: Some(fake.login_url()),
                api_url: Some(fake.api_url()),
            });
            configure(config);
        })
        .await
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
