//! Accounts that sign in with OAuth 2.0 (docs/api.md, "OAuth2"): the authorization-code flow
//! with PKCE, and each account's access tokens.
//!
//! A sign-in starts with a `state` that is random, single-use and expires
//! (`oauth.state_ttl_secs`); it binds the user who started it and what they asked for, so the
//! callback (which the browser brings, without the API's token) acts for them alone. Pending
//! sign-ins are kept in the store, sealed (the PKCE verifier with them) and by a digest of
//! their state, so the callback may reach any node and a restart loses none.
//!
//! An account's grant — refresh token, current access token and its expiry — is sealed at
//! rest like a password. Access tokens are refreshed `oauth.refresh_margin_secs` before they
//! expire, one refresh per account at a time: every job, send and push that needs a token
//! waits for the refresh under way, so two refreshes never race (a provider that rotates
//! refresh tokens would take the loser's for a revoked grant). A rotated refresh token is
//! stored at once. A refused refresh (`invalid_grant`) is reported as `auth_failed`, with the
//! reason, and the account waits for its user to re-connect it.

use crate::auth::{Bearer, BearerSource};
use crate::config::{OauthConfig, Provider};
use crate::connector::{ConnectorError, ErrorKind};
use crate::net::http::HttpClient;
use crate::secret::Secret;
use crate::store::Store;
use crate::store::sign_ins::{Bounds, PendingSignIn};
use crate::vault::{Sealed, Vault};
use bytes::Bytes;
use http_body_util::Full;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sign-ins under way at once, per user and in all.
const MAX_PENDING_PER_USER: usize = 10;
const MAX_PENDING: usize = 10_000;
/// How long a request to a provider may wait for its answer.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a sign-in failed; [`OauthError::code`] is the API's code for it.
#[derive(Debug, thiserror::Error)]
pub enum OauthError {
    #[error("no OAuth client is configured for connector `{0}`")]
    NotConfigured(String),
    #[error("the user did not grant access{}", .0.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied(Option<String>),
    #[error("the sign-in is unknown, used already or expired: start it again")]
    State,
    #[error("{0}")]
    Failed(String),
    #[error("too many sign-ins are under way; finish or let one expire first")]
    TooMany,
}

impl OauthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConfigured(_) => "not_configured",
            Self::Denied(_) => "oauth_denied",
            Self::State => "oauth_state",
            Self::Failed(_) => "oauth_failed",
            Self::TooMany => "too_many_sign_ins",
        }
    }
}

/// What a user asked for when starting a sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignIn {
    pub connector: String,
    pub user_id: String,
    pub kind: crate::account::AccountKind,
    pub sync_from: crate::account::SyncFrom,
    pub create_contact: bool,
    /// Re-connect this account instead of creating one.
    pub account_id: Option<String>,
    /// The address to offer the provider's sign-in page (`login_hint`, which Google and the
    /// Microsoft identity platform both take): a re-connect's mailbox.
    pub login_hint: Option<String>,
}

/// A sign-in under way, as sealed in the store until the callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    sign_in: SignIn,
    verifier: String,
}

/// The context sealed sign-ins are bound to.
const SIGN_IN_CONTEXT: &str = "oauth sign-in";

/// A completed sign-in: the grant and the mailbox address the provider names.
pub struct Granted {
    pub sign_in: SignIn,
    pub email: String,
    grant: Grant,
}

/// An account's tokens, as sealed at rest.
#[derive(Clone, Serialize, Deserialize)]
struct Grant {
    refresh_token: String,
    access_token: Option<String>,
    /// Unix seconds.
    expires_at: Option<i64>,
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The sign-ins under way and the tokens of every OAuth account.
pub struct Oauth {
    config: OauthConfig,
    redirect_url: String,
    /// Sends the requests to the providers' endpoints, which are the operator's choice:
    /// private addresses included.
    http: HttpClient,
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    accounts: Mutex<HashMap<String, Arc<AccountTokens>>>,
}

impl Oauth {
    pub fn new(
        config: OauthConfig,
        redirect_url: String,
        http: HttpClient,
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            redirect_url,
            http,
            store,
            vault,
            accounts: Mutex::new(HashMap::new()),
        })
    }

    /// The provider behind a connector, when one is configured.
    pub fn provider(&self, connector: &str) -> Option<Provider> {
        self.config.provider(connector)
    }

    /// Where a browser goes after the callback, when the CRM named a page.
    pub fn return_url(&self) -> Option<&str> {
        self.config.return_url.as_deref()
    }

    /// Starts a sign-in: the provider's authorization URL, with a new `state`. The sign-in
    /// is kept in the store, so that the callback may reach any node.
    pub async fn start(&self, sign_in: SignIn) -> Result<String, OauthError> {
        let provider = self
            .provider(&sign_in.connector)
            .ok_or_else(|| OauthError::NotConfigured(sign_in.connector.clone()))?;
        let client = self.client(&provider)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge);
        for scope in &provider.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        for (name, value) in &provider.extra_auth_params {
            request = request.add_extra_param(name, value);
        }
        if let Some(hint) = &sign_in.login_hint {
            request = request.add_extra_param("login_hint", hint);
        }
        let (url, state) = request.url();
        let ttl = Duration::from_secs(self.config.state_ttl_secs.clamp(1, 24 * 3600));
        let user_id = sign_in.user_id.clone();
        let pending = Pending {
            sign_in,
            verifier: verifier.secret().clone(),
        };
        let json = serde_json::to_string(&pending).expect("a sign-in serializes");
        let now_ms = crate::clock::now_millis();
        let kept = self
            .store
            .begin_sign_in(
                state.secret(),
                PendingSignIn {
                    user_id,
                    expires_ms: now_ms + ttl.as_millis() as i64,
                    sealed: self.vault.seal(SIGN_IN_CONTEXT, &Secret::new(json)),
                },
                now_ms,
                Bounds {
                    per_user: MAX_PENDING_PER_USER,
                    total: MAX_PENDING,
                },
            )
            .await
            .map_err(|e| OauthError::Failed(format!("cannot keep the sign-in: {e}")))?;
        if !kept {
            return Err(OauthError::TooMany);
        }
        Ok(url.to_string())
    }

    /// Ends a sign-in: the state is used up whatever follows. Exchanges the code for a grant
    /// and asks the provider which mailbox it is.
    pub async fn finish(
        &self,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
    ) -> Result<Granted, OauthError> {
        let sealed = self
            .store
            .take_sign_in(state, crate::clock::now_millis())
            .await
            .map_err(|e| OauthError::Failed(format!("cannot read the sign-in: {e}")))?
            .ok_or(OauthError::State)?;
        let pending: Pending = self
            .vault
            .open(SIGN_IN_CONTEXT, &sealed)
            .ok()
            .and_then(|json| serde_json::from_str(json.expose()).ok())
            .ok_or(OauthError::State)?;
        if let Some(error) = error {
            return Err(OauthError::Denied(Some(error.to_owned())));
        }
        let code = code.ok_or_else(|| OauthError::Failed("the provider sent no code".into()))?;
        let provider = self
            .provider(&pending.sign_in.connector)
            .ok_or_else(|| OauthError::NotConfigured(pending.sign_in.connector.clone()))?;
        let client = self.client(&provider)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&self.token_endpoint())
            .await
            .map_err(|e| {
                OauthError::Failed(format!("the code exchange failed: {}", describe(&e)))
            })?;
        let refresh_token = token
            .refresh_token()
            .map(|t| t.secret().clone())
            .ok_or_else(|| OauthError::Failed("the provider issued no refresh token".into()))?;
        let access = Secret::new(token.access_token().secret().clone());
        let email = self.address(&provider, &access).await.map_err(|e| {
            OauthError::Failed(format!(
                "asking the provider for the address failed: {}",
                e.message
            ))
        })?;
        Ok(Granted {
            sign_in: pending.sign_in,
            email,
            grant: Grant {
                refresh_token,
                access_token: Some(access.expose().to_owned()),
                expires_at: token.expires_in().map(expiry),
            },
        })
    }

    /// The grant sealed for `account_id`, as the store keeps it.
    pub fn seal(&self, account_id: &str, granted: &Granted) -> Sealed {
        let json = serde_json::to_string(&granted.grant).expect("a grant serializes");
        // A re-connected account's cached token belongs to the grant being replaced.
        self.forget(account_id);
        self.vault.seal(account_id, &Secret::new(json))
    }

    /// Forgets the access token cached for an account (deleted, or re-connected).
    pub fn forget(&self, account_id: &str) {
        self.accounts
            .lock()
            .expect("token cache poisoned")
            .remove(account_id);
    }

    /// The access tokens of an account of `connector`, for its jobs.
    pub fn bearer(self: &Arc<Self>, account_id: &str, connector: &str) -> Option<Bearer> {
        let provider = self.provider(connector)?;
        let mut accounts = self.accounts.lock().expect("token cache poisoned");
        let tokens = accounts
            .entry(account_id.to_owned())
            .or_insert_with(|| {
                Arc::new(AccountTokens {
                    oauth: Arc::downgrade(self),
                    account_id: account_id.to_owned(),
                    provider,
                    current: tokio::sync::Mutex::new(None),
                })
            })
            .clone();
        Some(Bearer(tokens))
    }

    fn client(&self, provider: &Provider) -> Result<Client, OauthError> {
        let invalid = |what: &str, e: oauth2::url::ParseError| {
            OauthError::Failed(format!("the configured {what} is not a URL: {e}"))
        };
        Ok(BasicClient::new(ClientId::new(provider.client_id.clone()))
            .set_client_secret(ClientSecret::new(provider.client_secret.clone()))
            .set_auth_uri(
                AuthUrl::new(provider.auth_url.clone()).map_err(|e| invalid("auth_url", e))?,
            )
            .set_token_uri(
                TokenUrl::new(provider.token_url.clone()).map_err(|e| invalid("token_url", e))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(self.redirect_url.clone())
                    .map_err(|e| invalid("redirect_url", e))?,
            ))
    }

    fn token_endpoint(&self) -> TokenEndpoint {
        TokenEndpoint(self.http.clone())
    }

    /// The mailbox address the provider names for a token (Gmail: `users.getProfile`).
    async fn address(&self, provider: &Provider, token: &Secret) -> Result<String, ConnectorError> {
        let url = format!(
            "{}{}",
            provider.api_url.trim_end_matches('/'),
            provider.address_path
        );
        let mut request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| ConnectorError::new(ErrorKind::Protocol, e.to_string()))?;
        let value =
            http::HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                ConnectorError::new(
                    ErrorKind::Protocol,
                    "the access token is not a header value",
                )
            })?;
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
        let response = self.http.exchange(request, true, PROVIDER_TIMEOUT).await?;
        let status = response.status();
        let body = response.into_body();
        if !status.is_success() {
            return Err(ConnectorError::new(
                ErrorKind::Protocol,
                format!("the provider answered {status}"),
            ));
        }
        let profile: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| ConnectorError::new(ErrorKind::Protocol, "the profile is not JSON"))?;
        provider
            .address_fields
            .iter()
            .find_map(|field| profile.get(field).and_then(|v| v.as_str()))
            .map(|email| email.trim().to_ascii_lowercase())
            .filter(|email| crate::account::validate_email(email).is_ok())
            .ok_or_else(|| ConnectorError::new(ErrorKind::Protocol, "the profile names no address"))
    }

    /// Refreshes a grant: the new grant, or why the provider refused.
    async fn refresh(&self, provider: &Provider, grant: &Grant) -> Result<Grant, ConnectorError> {
        let client = self
            .client(provider)
            .map_err(|e| ConnectorError::new(ErrorKind::Unsupported, e.to_string()))?;
        let refresh_token = RefreshToken::new(grant.refresh_token.clone());
        let mut request = client.exchange_refresh_token(&refresh_token);
        if provider.refresh_scopes {
            request = request.add_scopes(provider.scopes.iter().cloned().map(Scope::new));
        }
        let token = request
            .request_async(&self.token_endpoint())
            .await
            .map_err(|e| match &e {
                RequestTokenError::ServerResponse(response)
                    if *response.error() == BasicErrorResponseType::InvalidGrant =>
                {
                    ConnectorError::new(
                        ErrorKind::AuthFailed,
                        format!(
                            "the provider refused the account's grant ({}); re-connect the account",
                            describe(&e)
                        ),
                    )
                }
                _ => ConnectorError::new(
                    ErrorKind::Connect,
                    format!("refreshing the access token failed: {}", describe(&e)),
                ),
            })?;
        Ok(Grant {
            refresh_token: token
                .refresh_token()
                .map(|t| t.secret().clone())
                .unwrap_or_else(|| grant.refresh_token.clone()),
            access_token: Some(token.access_token().secret().clone()),
            expires_at: token.expires_in().map(expiry),
        })
    }
}

/// The oauth2 crate's requests, sent by the host's HTTP client.
struct TokenEndpoint(HttpClient);

impl<'c> oauth2::AsyncHttpClient<'c> for TokenEndpoint {
    type Error = ConnectorError;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<HttpResponse, ConnectorError>> + Send + 'static>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        let http = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
            let response = http.exchange(request, true, PROVIDER_TIMEOUT).await?;
            Ok(response.map(|body| body.to_vec()))
        })
    }
}

/// What a token request's failure says, without any token.
fn describe<E: std::error::Error>(
    error: &RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> String {
    match error {
        RequestTokenError::ServerResponse(response) => {
            let mut text = response.error().to_string();
            if let Some(description) = response.error_description() {
                text.push_str(": ");
                text.push_str(description);
            }
            text
        }
        RequestTokenError::Request(e) => e.to_string(),
        RequestTokenError::Parse(e, _) => format!("the answer could not be read ({e})"),
        RequestTokenError::Other(e) => e.clone(),
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// When a token given for `lifetime` expires, in Unix seconds: at most a year on, whatever
/// the provider says.
fn expiry(lifetime: Duration) -> i64 {
    const YEAR: u64 = 365 * 24 * 3600;
    unix_now() + lifetime.as_secs().min(YEAR) as i64
}

/// One account's access tokens: the current one in memory, the grant sealed in the store.
struct AccountTokens {
    oauth: std::sync::Weak<Oauth>,
    account_id: String,
    provider: Provider,
    /// The access token in use and when it expires.
    /// Held across a refresh, so that one refresh at a time runs and the others wait for it.
    current: tokio::sync::Mutex<Option<Current>>,
}

#[derive(Clone)]
struct Current {
    token: Secret,
    /// Unix seconds.
    expires_at: Option<i64>,
}

impl AccountTokens {
    fn oauth(&self) -> Result<Arc<Oauth>, ConnectorError> {
        self.oauth
            .upgrade()
            .ok_or_else(|| ConnectorError::new(ErrorKind::Internal, "the server is stopping"))
    }

    fn usable(&self, current: &Current, margin: i64) -> bool {
        current.expires_at.is_none_or(|at| at - margin > unix_now())
    }

    /// The stored grant, as sealed and opened.
    async fn grant(&self, oauth: &Oauth) -> Result<(Sealed, Grant), ConnectorError> {
        let internal = |message: String| ConnectorError::new(ErrorKind::Internal, message);
        let sealed = oauth
            .store
            .account_secret(&self.account_id)
            .await
            .map_err(|e| internal(format!("cannot read the account's grant: {e}")))?
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorKind::AuthFailed,
                    "the account has no grant; re-connect the account",
                )
            })?;
        let opened = oauth
            .vault
            .open(&self.account_id, &sealed)
            .map_err(|e| internal(format!("cannot open the account's grant: {e}")))?;
        let grant = serde_json::from_str(opened.expose())
            .map_err(|_| internal("the account's grant is damaged".into()))?;
        Ok((sealed, grant))
    }

    /// Refreshes under the lock the caller holds, stores the new grant at once, and makes
    /// its access token the current one. A grant stored meanwhile (a re-connect, or another
    /// node's refresh) wins: the refresh is done again from it, and a refusal of the grant
    /// that was replaced meanwhile is no refusal of the account's.
    async fn renew(&self, current: &mut Option<Current>) -> Result<Secret, ConnectorError> {
        let oauth = self.oauth()?;
        let mut attempts = 0;
        let renewed = loop {
            attempts += 1;
            let (stored, grant) = self.grant(&oauth).await?;
            let renewed = match oauth.refresh(&self.provider, &grant).await {
                Ok(renewed) => renewed,
                Err(refused) if attempts < 3 && self.grant(&oauth).await?.0 != stored => {
                    tracing::debug!("a newer grant was stored while refreshing: {refused}");
                    continue;
                }
                Err(refused) => return Err(refused),
            };
            let json = serde_json::to_string(&renewed).expect("a grant serializes");
            let sealed = oauth.vault.seal(&self.account_id, &Secret::new(json));
            let kept = oauth
                .store
                .replace_account_secret(&self.account_id, stored, sealed)
                .await
                .map_err(|e| {
                    ConnectorError::new(
                        ErrorKind::Internal,
                        format!("cannot keep the new grant: {e}"),
                    )
                })?;
            if kept || attempts >= 3 {
                break renewed;
            }
        };
        let token = Secret::new(renewed.access_token.unwrap_or_default());
        *current = Some(Current {
            token: token.clone(),
            expires_at: renewed.expires_at,
        });
        Ok(token)
    }
}

#[async_trait::async_trait]
impl BearerSource for AccountTokens {
    async fn token(&self) -> Result<Secret, ConnectorError> {
        let margin = self.oauth()?.config.refresh_margin_secs as i64;
        let mut current = self.current.lock().await;
        if let Some(now) = current.as_ref().filter(|c| self.usable(c, margin)) {
            return Ok(now.token.clone());
        }
        if current.is_none() {
            // The stored access token serves until it nears its expiry, across restarts.
            let oauth = self.oauth()?;
            let (_, grant) = self.grant(&oauth).await?;
            if let Some(token) = grant.access_token {
                let stored = Current {
                    token: Secret::new(token),
                    expires_at: grant.expires_at,
                };
                if self.usable(&stored, margin) {
                    *current = Some(stored.clone());
                    return Ok(stored.token);
                }
            }
        }
        self.renew(&mut current).await
    }

    async fn refused(&self, token: &Secret) -> Result<Option<Secret>, ConnectorError> {
        let mut current = self.current.lock().await;
        match current.as_ref() {
            // Another request refreshed meanwhile: try its token.
            Some(now) if now.token.expose() != token.expose() => Ok(Some(now.token.clone())),
            _ => self.renew(&mut current).await.map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountKind, SyncFrom};
    use crate::config::{MicrosoftConfig, ProviderConfig};
    use base64::Engine as _;

    fn oauth(state_ttl_secs: u64) -> Arc<Oauth> {
        let config = OauthConfig {
            state_ttl_secs,
            google: Some(ProviderConfig {
                client_id: "client".into(),
                client_secret: "secret".into(),
                auth_url: Some("https://accounts.example/auth".into()),
                token_url: Some("https://accounts.example/token".into()),
                api_url: Some("https://gmail.example".into()),
            }),
            microsoft: Some(MicrosoftConfig {
                client_id: "ms-client".into(),
                client_secret: "ms-secret".into(),
                tenant: "contoso.onmicrosoft.com".into(),
                login_url: None,
                api_url: None,
            }),
            ..OauthConfig::default()
        };
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let vault = Vault::load(std::path::Path::new("/nonexistent"), Some(&key)).unwrap();
        let http = HttpClient {
            net: crate::net::NetPolicy::new(&crate::config::NetConfig::default()),
            tls: crate::net::TlsPolicy::new(None).unwrap(),
            max_response_bytes: 1 << 20,
            plain: crate::net::PlainHttp::Never,
        };
        Oauth::new(
            config,
            "http://127.0.0.1:8025/v1/oauth/callback".into(),
            http,
            Arc::new(crate::store::testing::store()),
            Arc::new(vault),
        )
    }

    fn sign_in(connector: &str) -> SignIn {
        SignIn {
            connector: connector.into(),
            user_id: "usr_1".into(),
            kind: AccountKind::Personal,
            sync_from: SyncFrom::OneMonth,
            create_contact: false,
            account_id: None,
            login_hint: None,
        }
    }

    fn query(url: &str) -> HashMap<String, String> {
        oauth2::url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    #[tokio::test]
    async fn a_sign_in_asks_for_offline_gmail_access_with_pkce_and_its_state_is_used_once() {
        let oauth = oauth(600);
        let url = oauth.start(sign_in("google")).await.unwrap();
        assert!(url.starts_with("https://accounts.example/auth?"), "{url}");
        let query = query(&url);
        assert_eq!(query["client_id"], "client");
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["scope"], "https://mail.google.com/");
        assert_eq!(query["access_type"], "offline");
        assert_eq!(query["prompt"], "consent");
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["code_challenge"].len(), 43);
        assert_eq!(
            query["redirect_uri"],
            "http://127.0.0.1:8025/v1/oauth/callback"
        );
        let state = &query["state"];
        assert!(state.len() >= 16, "{state}");
        // The user declined: that uses the state up as well.
        let declined = oauth.finish(state, None, Some("access_denied")).await;
        assert!(matches!(declined, Err(OauthError::Denied(_))));
        let again = oauth.finish(state, Some("a-code"), None).await;
        assert!(matches!(again, Err(OauthError::State)));
        assert_eq!(OauthError::State.code(), "oauth_state");
    }

    #[tokio::test]
    async fn a_microsoft_sign_in_goes_to_the_tenant_with_graph_scopes_and_a_reconnect_names_the_mailbox()
     {
        let oauth = oauth(600);
        let url = oauth
            .start(SignIn {
                login_hint: Some("ann@contoso.example".into()),
                ..sign_in("microsoft")
            })
            .await
            .unwrap();
        assert!(
            url.starts_with(
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize?"
            ),
            "{url}"
        );
        let query = query(&url);
        assert_eq!(query["client_id"], "ms-client");
        assert_eq!(
            query["scope"],
            "offline_access Mail.ReadWrite Mail.Send User.Read"
        );
        assert_eq!(query["login_hint"], "ann@contoso.example");
        assert_eq!(query["code_challenge_method"], "S256");
        assert!(!query.contains_key("access_type"), "{url}");
        let provider = oauth.provider("microsoft").unwrap();
        assert_eq!(
            provider.token_url,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(provider.api_url, "https://graph.microsoft.com");
        assert_eq!(provider.address_path, "/v1.0/me");
        assert!(provider.refresh_scopes);
    }

    #[tokio::test]
    async fn an_unknown_or_expired_state_is_refused() {
        let oauth = oauth(1);
        let forged = oauth.finish("forged", Some("a-code"), None).await;
        assert!(matches!(forged, Err(OauthError::State)));
        let url = oauth.start(sign_in("google")).await.unwrap();
        let state = query(&url)["state"].clone();
        std::thread::sleep(Duration::from_millis(1100));
        let late = oauth.finish(&state, Some("a-code"), None).await;
        assert!(matches!(late, Err(OauthError::State)));
    }

    #[tokio::test]
    async fn a_user_has_a_bounded_number_of_sign_ins_under_way() {
        let oauth = oauth(600);
        for _ in 0..MAX_PENDING_PER_USER {
            oauth.start(sign_in("google")).await.unwrap();
        }
        assert!(matches!(
            oauth.start(sign_in("google")).await,
            Err(OauthError::TooMany)
        ));
        let other = SignIn {
            user_id: "usr_2".into(),
            ..sign_in("google")
        };
        assert!(oauth.start(other).await.is_ok());
    }

    #[tokio::test]
    async fn a_connector_without_a_configured_provider_cannot_start() {
        let refused = oauth(600).start(sign_in("outlook")).await;
        assert!(matches!(refused, Err(OauthError::NotConfigured(_))));
        assert_eq!(refused.map(|_| ()).unwrap_err().code(), "not_configured");
    }
}
