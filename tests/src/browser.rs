//! A user's browser signing an account in through Mailroom's OAuth endpoints and a fake
//! provider's: it trusts the fake's certificate and does not follow redirects, so each step
//! can be looked at.

use crate::mailroom::{Answer, Mailroom, answer};
use reqwest::StatusCode;
use serde_json::Value;

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
