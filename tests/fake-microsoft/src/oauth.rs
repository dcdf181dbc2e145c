//! The Microsoft identity platform's authorization code flow, as
//! <https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow>
//! documents it, with the error codes of
//! <https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes>:
//!
//! * `{tenant}` is `common` (any account), `organizations`, the directory's
//!   tenant id or one of its domains — that of a work account's UPN — (work
//!   accounts), `consumers` or the consumer tenant id
//!   `9188040d-6c67-4c5b-b112-36a304b66dad` (personal accounts); anything
//!   else is AADSTS90002. An account the tenant does not admit gets the
//!   AADSTS50020 page.
//! * The authorization endpoint checks the client, the redirect URI,
//!   `response_type=code`, a scope and a PKCE S256 challenge, then — nobody
//!   being there to click — signs in the `login_hint` account (or else the
//!   last account added) and redirects at once with a code, or with
//!   `error=access_denied` (AADSTS65004) when that account's [`Consent`] is
//!   Deny. `response_mode` may be `query` (the default), `fragment` or
//!   `form_post`.
//! * Codes live ten minutes and are good for one redemption, bound to the
//!   client, the redirect URI and the challenge.
//! * The token endpoint takes the client's secret in the form or in an
//!   `Authorization: Basic` header, redeems a code or a refresh token, and
//!   answers errors in the platform's shape:
//!   `{"error","error_description":"AADSTSnnnn: …","error_codes","timestamp","trace_id","correlation_id","error_uri"}`.
//! * A refresh token comes only with the `offline_access` scope; every
//!   refresh answers a new one, and with rotation on the old one is retired
//!   (AADSTS70008 afterwards). A revoked grant is AADSTS50173. Revoking does
//!   not end access tokens already issued: like the platform's, they work
//!   until they expire.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use mailroom_fake_https::oauth::{
    client_credentials, is_pkce_string, random_token, s256, with_query,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::odata::{Params, param};
use crate::{Consent, Options, User, guid};

/// The tenant id of personal Microsoft accounts.
pub(crate) const CONSUMER_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
const GRAPH: &str = "https://graph.microsoft.com/";
const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// What the authorization endpoint answers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Authorization {
    /// 302 to this URL.
    Redirect(String),
    /// 200 with this HTML page, which posts the answer to the redirect URI.
    FormPost(String),
    /// An error page with this status and HTML.
    Page(u16, String),
}

/// Who may sign in at a `{tenant}` path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Audience {
    Any,
    Work,
    Personal,
}

/// An account of the directory.
struct Account {
    user: User,
    consent: Consent,
    /// Raised by each revocation: refresh tokens of an older generation are dead.
    generation: u32,
}

struct Code {
    upn: String,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scopes: Vec<String>,
    expires: Instant,
}

struct AccessToken {
    upn: String,
    expires: Instant,
    expired: bool,
}

struct RefreshToken {
    upn: String,
    scopes: Vec<String>,
    generation: u32,
}

pub(crate) struct Identity {
    client_id: String,
    client_secret: String,
    tenant_id: String,
    access_lifetime: Duration,
    rotate_refresh_tokens: bool,
    /// Accounts by lowercased UPN, and the UPNs in the order added.
    accounts: HashMap<String, Account>,
    order: Vec<String>,
    codes: HashMap<String, Code>,
    redeemed: HashSet<String>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    retired: HashSet<String>,
    access_tokens_issued: u64,
}

/// A token endpoint answer: status and JSON body.
pub(crate) type TokenAnswer = (u16, Value);

/// `2016-01-09 02:02:12Z`, the platform's timestamp format.
fn timestamp() -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// An error description as the platform writes it, with its diagnostics.
fn describe(
    code: u32,
    text: &str,
    trace_id: &str,
    correlation_id: &str,
    timestamp: &str,
) -> String {
    format!(
        "AADSTS{code}: {text}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
    )
}

fn token_error(status: u16, error: &str, code: u32, text: &str) -> TokenAnswer {
    let (trace_id, correlation_id, timestamp) = (guid(), guid(), timestamp());
    (
        status,
        json!({
            "error": error,
            "error_description": describe(code, text, &trace_id, &correlation_id, &timestamp),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// A code or refresh token the platform never issued (AADSTS9002313).
fn unknown_grant() -> TokenAnswer {
    token_error(
        400,
        "invalid_grant",
        9002313,
        "Invalid request. Request is malformed or invalid.",
    )
}

/// A code past its ten minutes, or a refresh token retired by rotation
/// (AADSTS70008).
fn expired_grant() -> TokenAnswer {
    token_error(
        400,
        "invalid_grant",
        70008,
        "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
    )
}

fn missing(name: &str) -> String {
    format!("The request body must contain the following parameter: '{name}'.")
}

/// An HTML error page like the sign-in page's.
fn page(status: u16, code: u32, text: &str) -> Authorization {
    let text = describe(code, text, &guid(), &guid(), &timestamp());
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("\r\n", "<br>");
    Authorization::Page(
        status,
        format!(
            "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body>\
             <h1>Sorry, but we're having trouble signing you in.</h1><p>{escaped}</p></body></html>"
        ),
    )
}

/// Graph scopes in their full form (`Mail.Read` is
/// `https://graph.microsoft.com/Mail.Read`); OpenID scopes as they are.
fn normalize_scopes(scope: &str) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in scope.split_whitespace() {
        let lower = scope.to_ascii_lowercase();
        let full = if OIDC_SCOPES.contains(&lower.as_str()) {
            lower
        } else if scope.contains("://") {
            scope.to_owned()
        } else {
            format!("{GRAPH}{scope}")
        };
        if !scopes.contains(&full) {
            scopes.push(full);
        }
    }
    scopes
}

/// The `scope` of a token answer: what the access token is good for.
fn granted_scope(scopes: &[String]) -> String {
    scopes
        .iter()
        .filter(|scope| *scope != "offline_access")
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The answer to the redirect URI in the requested response mode.
fn answer(redirect_uri: &str, mode: &str, pairs: &[(&str, &str)]) -> Authorization {
    match mode {
        "fragment" => {
            let fragment = serde_urlencoded::to_string(pairs).unwrap_or_default();
            Authorization::Redirect(format!("{redirect_uri}#{fragment}"))
        }
        "form_post" => {
            let escape = |text: &str| {
                text.replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            };
            let inputs: String = pairs
                .iter()
                .map(|(name, value)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                        escape(name),
                        escape(value)
                    )
                })
                .collect();
            Authorization::FormPost(format!(
                "<!DOCTYPE html><html><head><title>Working...</title></head>\
                 <body onload=\"document.forms[0].submit()\"><form method=\"POST\" action=\"{}\">{inputs}\
                 <noscript><input type=\"submit\" value=\"Continue\"></noscript></form></body></html>",
                escape(redirect_uri)
            ))
        }
        _ => Authorization::Redirect(with_query(redirect_uri, pairs)),
    }
}

impl Identity {
    pub(crate) fn new(options: &Options) -> Self {
        Identity {
            client_id: options.client_id.clone(),
            client_secret: options.client_secret.clone(),
            tenant_id: options.tenant_id.clone(),
            access_lifetime: options.access_token_lifetime,
            rotate_refresh_tokens: options.rotate_refresh_tokens,
            accounts: HashMap::new(),
            order: Vec::new(),
            codes: HashMap::new(),
            redeemed: HashSet::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            retired: HashSet::new(),
            access_tokens_issued: 0,
        }
    }

    /// Adds an account; false when its UPN is taken.
    pub(crate) fn add_account(&mut self, user: &User) -> bool {
        let key = user.upn.to_ascii_lowercase();
        if self.accounts.contains_key(&key) {
            return false;
        }
        self.accounts.insert(
            key.clone(),
            Account {
                user: user.clone(),
                consent: Consent::Grant,
                generation: 0,
            },
        );
        self.order.push(key);
        true
    }

    /// The account with this UPN (or, failing that, this mail address).
    pub(crate) fn find(&self, name: &str) -> Option<&User> {
        let key = name.to_ascii_lowercase();
        self.accounts
            .get(&key)
            .or_else(|| {
                self.accounts.values().find(|account| {
                    account
                        .user
                        .mail
                        .as_deref()
                        .is_some_and(|mail| mail.eq_ignore_ascii_case(name))
                })
            })
            .map(|account| &account.user)
    }

    /// # Panics
    /// When the directory has no such account: a mistake in the test.
    pub(crate) fn set_consent(&mut self, upn: &str, consent: Consent) {
        self.account_mut(upn).consent = consent;
    }

    fn account_mut(&mut self, upn: &str) -> &mut Account {
        self.accounts
            .get_mut(&upn.to_ascii_lowercase())
            .unwrap_or_else(|| {
                panic!("the fake Microsoft has no account {upn}; call add_user first")
            })
    }

    pub(crate) fn access_tokens_issued(&self) -> u64 {
        self.access_tokens_issued
    }

    fn audience(&self, tenant: &str) -> Option<Audience> {
        match tenant.to_ascii_lowercase().as_str() {
            "common" => Some(Audience::Any),
            "organizations" => Some(Audience::Work),
            "consumers" | CONSUMER_TENANT => Some(Audience::Personal),
            other if other.eq_ignore_ascii_case(&self.tenant_id) => Some(Audience::Work),
            // A verified domain of the directory: that of a work account's UPN.
            other => self
                .accounts
                .values()
                .filter(|account| !account.user.personal)
                .filter_map(|account| account.user.upn.rsplit_once('@'))
                .any(|(_, domain)| domain.eq_ignore_ascii_case(other))
                .then_some(Audience::Work),
        }
    }

    fn tenant_not_found(tenant: &str) -> String {
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        )
    }

    /// The authorization endpoint at `/{tenant}/oauth2/v2.0/authorize`.
    pub(crate) fn authorize(
        &mut self,
        tenant: &str,
        params: &Params,
        now: Instant,
    ) -> Authorization {
        let Some(audience) = self.audience(tenant) else {
            return page(400, 90002, &Self::tenant_not_found(tenant));
        };
        let Some(client_id) = param(params, "client_id") else {
            return page(400, 900144, &missing("client_id"));
        };
        if client_id != self.client_id {
            return page(
                400,
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                ),
            );
        }
        let Some(redirect_uri) = param(params, "redirect_uri") else {
            return page(400, 900144, &missing("redirect_uri"));
        };
        if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://"))
            || redirect_uri.contains('#')
        {
            return page(
                400,
                50011,
                &format!(
                    "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
                ),
            );
        }
        let mode = match param(params, "response_mode") {
            None | Some("query") => "query",
            Some("fragment") => "fragment",
            Some("form_post") => "form_post",
            Some(other) => {
                return page(
                    400,
                    70007,
                    &format!(
                        "The application returned an unsupported value '{other}' of response_mode."
                    ),
                );
            }
        };
        let state = param(params, "state");
        let refuse = |error: &str, code: u32, text: &str| {
            let description = describe(code, text, &guid(), &guid(), &timestamp());
            let mut pairs = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            pairs.extend(state.map(|s| ("state", s)));
            answer(redirect_uri, mode, &pairs)
        };
        match param(params, "response_type") {
            Some("code") => {}
            Some(other) => {
                return refuse(
                    "unsupported_response_type",
                    70005,
                    &format!(
                        "The application requested an unsupported response type '{other}'; this fake serves 'code'."
                    ),
                );
            }
            None => return refuse("invalid_request", 900144, &missing("response_type")),
        }
        let scopes = match param(params, "scope") {
            Some(scope) if !scope.trim().is_empty() => normalize_scopes(scope),
            _ => return refuse("invalid_request", 900144, &missing("scope")),
        };
        let Some(challenge) = param(params, "code_challenge") else {
            return refuse("invalid_request", 900144, &missing("code_challenge"));
        };
        if !is_pkce_string(challenge) {
            return refuse(
                "invalid_request",
                501491,
                "Invalid size of Code_Challenge parameter.",
            );
        }
        if param(params, "code_challenge_method") != Some("S256") {
            return refuse(
                "invalid_request",
                900144,
                "The request must contain 'code_challenge_method' with the value 'S256'.",
            );
        }

        let upn = match param(params, "login_hint") {
            Some(hint) => match self.find(hint) {
                Some(user) => user.upn.to_ascii_lowercase(),
                None => {
                    return page(
                        400,
                        50034,
                        &format!("The user account {hint} does not exist in the directory."),
                    );
                }
            },
            None => match self.order.last() {
                Some(upn) => upn.clone(),
                None => return page(400, 50058, "There is no account to sign in with."),
            },
        };
        let account = &self.accounts[&upn];
        let admitted = match audience {
            Audience::Any => true,
            Audience::Work => !account.user.personal,
            Audience::Personal => account.user.personal,
        };
        if !admitted {
            let (provider, home) = if account.user.personal {
                ("live.com", tenant)
            } else {
                (self.tenant_id.as_str(), "consumers")
            };
            return page(
                400,
                50020,
                &format!(
                    "User account '{}' from identity provider '{provider}' does not exist in tenant '{home}' and cannot access the application '{client_id}' in that tenant.",
                    account.user.upn
                ),
            );
        }
        if account.consent == Consent::Deny {
            return refuse(
                "access_denied",
                65004,
                "User declined to consent to access the app.",
            );
        }

        let code = random_token("1.A", 48);
        self.codes.insert(
            code.clone(),
            Code {
                upn,
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                challenge: challenge.to_owned(),
                scopes,
                expires: now + CODE_LIFETIME,
            },
        );
        let mut pairs = vec![("code", code.as_str())];
        pairs.extend(state.map(|s| ("state", s)));
        answer(redirect_uri, mode, &pairs)
    }

    /// The token endpoint at `/{tenant}/oauth2/v2.0/token`: `form` is the
    /// request body, `basic` the credentials of an `Authorization: Basic`
    /// header if there was one.
    pub(crate) fn token(
        &mut self,
        tenant: &str,
        form: &Params,
        basic: Option<(String, String)>,
        now: Instant,
    ) -> TokenAnswer {
        if self.audience(tenant).is_none() {
            return token_error(
                400,
                "invalid_request",
                90002,
                &Self::tenant_not_found(tenant),
            );
        }
        let (client_id, client_secret) = client_credentials(basic, |name| param(form, name));
        let Some(client_id) = client_id else {
            return token_error(400, "invalid_request", 900144, &missing("client_id"));
        };
        if client_id != self.client_id {
            return token_error(
                400,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                ),
            );
        }
        let Some(client_secret) = client_secret else {
            return token_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            );
        };
        if client_secret != self.client_secret {
            return token_error(
                401,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            );
        }
        match param(form, "grant_type") {
            Some("authorization_code") => self.redeem_code(form, &client_id, now),
            Some("refresh_token") => self.redeem_refresh(form, now),
            Some(other) => token_error(
                400,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            ),
            None => token_error(400, "invalid_request", 900144, &missing("grant_type")),
        }
    }

    fn redeem_code(&mut self, form: &Params, client_id: &str, now: Instant) -> TokenAnswer {
        let Some(code) = param(form, "code") else {
            return token_error(400, "invalid_request", 900144, &missing("code"));
        };
        let Some(redirect_uri) = param(form, "redirect_uri") else {
            return token_error(400, "invalid_request", 900144, &missing("redirect_uri"));
        };
        if self.redeemed.contains(code) {
            return token_error(
                400,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            );
        }
        // A code is good for one presentation, whatever its outcome.
        let Some(grant) = self.codes.remove(code) else {
            return unknown_grant();
        };
        self.redeemed.insert(code.to_owned());
        if now >= grant.expires {
            return expired_grant();
        }
        if grant.client_id != client_id || grant.redirect_uri != redirect_uri {
            return token_error(
                400,
                "invalid_grant",
                70000,
                "The provided value for the 'redirect_uri' is not valid. It must match the redirect URI of the authorization request.",
            );
        }
        let Some(verifier) = param(form, "code_verifier") else {
            return token_error(400, "invalid_request", 900144, &missing("code_verifier"));
        };
        if !is_pkce_string(verifier) || s256(verifier) != grant.challenge {
            return token_error(
                400,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            );
        }
        (200, self.issue(&grant.upn, &grant.scopes, now))
    }

    fn redeem_refresh(&mut self, form: &Params, now: Instant) -> TokenAnswer {
        let Some(token) = param(form, "refresh_token") else {
            return token_error(400, "invalid_request", 900144, &missing("refresh_token"));
        };
        if self.retired.contains(token) {
            return expired_grant();
        }
        let Some(grant) = self.refresh.get(token) else {
            return unknown_grant();
        };
        let (upn, scopes) = (grant.upn.clone(), grant.scopes.clone());
        let current = self.accounts.get(&upn).map_or(u32::MAX, |a| a.generation);
        if grant.generation != current {
            return token_error(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
            );
        }
        if self.rotate_refresh_tokens {
            self.refresh.remove(token);
            self.retired.insert(token.to_owned());
        }
        (200, self.issue(&upn, &scopes, now))
    }

    /// An access token, and a refresh token when `offline_access` was granted.
    fn issue(&mut self, upn: &str, scopes: &[String], now: Instant) -> Value {
        let access_token = random_token("EwB", 48);
        self.access.insert(
            access_token.clone(),
            AccessToken {
                upn: upn.to_owned(),
                expires: now + self.access_lifetime,
                expired: false,
            },
        );
        self.access_tokens_issued += 1;
        let lifetime = self.access_lifetime.as_secs();
        let mut body = json!({
            "token_type": "Bearer",
            "scope": granted_scope(scopes),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        });
        if scopes.iter().any(|scope| scope == "offline_access") {
            let refresh_token = random_token("M.C", 48);
            let generation = self.accounts.get(upn).map_or(0, |a| a.generation);
            self.refresh.insert(
                refresh_token.clone(),
                RefreshToken {
                    upn: upn.to_owned(),
                    scopes: scopes.to_vec(),
                    generation,
                },
            );
            body["refresh_token"] = json!(refresh_token);
        }
        body
    }

    /// The account (lowercased UPN) an access token stands for: `Err` with
    /// Graph's message when it does not work.
    pub(crate) fn user_of(&self, access_token: &str, now: Instant) -> Result<&str, &'static str> {
        let token = self
            .access
            .get(access_token)
            .ok_or("IDX14100: JWT is not well formed, there are no dots (.).")?;
        if token.expired || now >= token.expires {
            return Err("Lifetime validation failed, the token is expired.");
        }
        Ok(&token.upn)
    }

    pub(crate) fn expire_access_tokens(&mut self) {
        for token in self.access.values_mut() {
            token.expired = true;
        }
    }

    /// Revokes the account's grants: its refresh tokens answer AADSTS50173.
    pub(crate) fn revoke(&mut self, upn: &str) {
        self.account_mut(upn).generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use mailroom_fake_https::testing::{code_redemption, pairs};

    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const REDIRECT: &str = "https://mailroom.test/oauth/callback";

    fn user(upn: &str, personal: bool) -> User {
        User {
            upn: upn.to_owned(),
            mail: Some(upn.to_owned()),
            display_name: upn.to_owned(),
            personal,
        }
    }

    fn identity(options: Options) -> Identity {
        let mut identity = Identity::new(&options);
        identity.add_account(&user("ann@contoso.test", false));
        identity.add_account(&user("bob@outlook.test", true));
        identity
    }

    fn authorize(identity: &mut Identity, tenant: &str, extra: &[(&str, &str)]) -> Authorization {
        let challenge = s256(VERIFIER);
        let mut params = vec![
            ("client_id", "mailroom-test-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            (
                "scope",
                "offline_access Mail.ReadWrite https://graph.microsoft.com/Mail.Send",
            ),
            ("state", "xyz"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        params.extend_from_slice(extra);
        identity.authorize(tenant, &pairs(&params), Instant::now())
    }

    fn query_of(answer: &Authorization) -> Vec<(String, String)> {
        let Authorization::Redirect(location) = answer else {
            panic!("expected a redirect, got {answer:?}");
        };
        assert!(location.starts_with(REDIRECT), "{location}");
        serde_urlencoded::from_str(location.split_once('?').unwrap().1).unwrap()
    }

    fn exchange(identity: &mut Identity, code: &str, verifier: &str) -> TokenAnswer {
        let form = pairs(&code_redemption(code, REDIRECT, verifier));
        identity.token("common", &form, None, Instant::now())
    }

    fn refresh(identity: &mut Identity, token: &str) -> TokenAnswer {
        let form = pairs(&[("grant_type", "refresh_token"), ("refresh_token", token)]);
        let basic = Some((
            "mailroom-test-client".to_owned(),
            "mailroom-test-secret".to_owned(),
        ));
        identity.token("organizations", &form, basic, Instant::now())
    }

    fn code(answer: &Authorization) -> String {
        let query = query_of(answer);
        assert_eq!(param(&query, "state"), Some("xyz"));
        param(&query, "code").unwrap().to_owned()
    }

    #[test]
    fn code_flow_issues_tokens_once() {
        let mut identity = identity(Options::default());
        let code = code(&authorize(
            &mut identity,
            "common",
            &[("login_hint", "ANN@contoso.test")],
        ));
        let (status, body) = exchange(&mut identity, &code, VERIFIER);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["ext_expires_in"], 3600);
        assert_eq!(
            body["scope"],
            "https://graph.microsoft.com/Mail.ReadWrite https://graph.microsoft.com/Mail.Send"
        );
        let access = body["access_token"].as_str().unwrap();
        assert_eq!(
            identity.user_of(access, Instant::now()),
            Ok("ann@contoso.test")
        );
        assert!(body["refresh_token"].is_string());
        assert_eq!(identity.access_tokens_issued(), 1);

        let (status, again) = exchange(&mut identity, &code, VERIFIER);
        assert_eq!(
            (status, again["error_codes"][0].as_u64()),
            (400, Some(54005))
        );
    }

    #[test]
    fn pkce_is_checked_and_burns_the_code() {
        let mut identity = identity(Options::default());
        let code = code(&authorize(&mut identity, "common", &[]));
        let (status, body) = exchange(&mut identity, &code, &"a".repeat(43));
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS501481: ")
        );
        assert_eq!(exchange(&mut identity, &code, VERIFIER).0, 400);
        assert_eq!(identity.access_tokens_issued(), 0);
    }

    #[test]
    fn tenants_admit_their_accounts() {
        let mut identity = identity(Options::default());
        let tenant = Options::default().tenant_id;
        let work = [("login_hint", "ann@contoso.test")];
        let personal = [("login_hint", "bob@outlook.test")];
        for (tenant, hint, admitted) in [
            ("common", &work, true),
            ("common", &personal, true),
            ("organizations", &work, true),
            ("organizations", &personal, false),
            (tenant.as_str(), &work, true),
            (tenant.as_str(), &personal, false),
            ("consumers", &personal, true),
            ("consumers", &work, false),
            (CONSUMER_TENANT, &personal, true),
        ] {
            let answer = authorize(&mut identity, tenant, hint);
            match answer {
                Authorization::Redirect(_) => assert!(admitted, "{tenant} {hint:?}"),
                Authorization::Page(400, ref html) => {
                    assert!(!admitted, "{tenant} {hint:?}");
                    assert!(html.contains("AADSTS50020"), "{html}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            authorize(&mut identity, "Contoso.test", &work),
            Authorization::Redirect(_)
        ));
        let Authorization::Page(400, html) = authorize(&mut identity, "outlook.test", &work) else {
            panic!("an unknown tenant is an error page");
        };
        assert!(html.contains("AADSTS90002"));
        // Without a hint, the last account added signs in.
        let code = code(&authorize(&mut identity, "common", &[]));
        let access = exchange(&mut identity, &code, VERIFIER).1["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            identity.user_of(&access, Instant::now()),
            Ok("bob@outlook.test")
        );
    }

    #[test]
    fn a_denied_consent_redirects_with_access_denied() {
        let mut identity = identity(Options::default());
        identity.set_consent("ann@contoso.test", Consent::Deny);
        let query = query_of(&authorize(
            &mut identity,
            "common",
            &[("login_hint", "ann@contoso.test")],
        ));
        assert_eq!(param(&query, "error"), Some("access_denied"));
        assert_eq!(param(&query, "state"), Some("xyz"));
        assert!(
            param(&query, "error_description")
                .unwrap()
                .starts_with("AADSTS65004: ")
        );
        assert_eq!(param(&query, "code"), None);
    }

    #[test]
    fn response_modes() {
        let mut identity = identity(Options::default());
        let Authorization::Redirect(location) =
            authorize(&mut identity, "common", &[("response_mode", "fragment")])
        else {
            panic!("a fragment redirect");
        };
        assert!(location.starts_with(&format!("{REDIRECT}#code=")));
        let Authorization::FormPost(html) =
            authorize(&mut identity, "common", &[("response_mode", "form_post")])
        else {
            panic!("a form post");
        };
        assert!(html.contains("name=\"code\"") && html.contains("name=\"state\" value=\"xyz\""));
    }

    #[test]
    fn refresh_rotation_and_revocation() {
        let mut identity = identity(Options::default());
        let code = code(&authorize(
            &mut identity,
            "common",
            &[("login_hint", "ann@contoso.test")],
        ));
        let first = exchange(&mut identity, &code, VERIFIER).1["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, body) = refresh(&mut identity, &first);
        assert_eq!(status, 200, "{body}");
        let second = body["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(second, first);
        let (status, body) = refresh(&mut identity, &first);
        assert_eq!(
            (status, body["error_codes"][0].as_u64()),
            (400, Some(70008))
        );
        let (status, body) = refresh(&mut identity, &second);
        assert_eq!(status, 200);
        let latest = body["refresh_token"].as_str().unwrap().to_owned();
        let unknown = refresh(&mut identity, "nonsense").1;
        assert_eq!(unknown["error"], "invalid_grant");

        identity.revoke("Ann@Contoso.test");
        let (status, body) = refresh(&mut identity, &latest);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert_eq!(body["error_codes"][0], 50173);
    }

    #[test]
    fn without_rotation_old_refresh_tokens_keep_working() {
        let mut identity = identity(Options {
            rotate_refresh_tokens: false,
            ..Options::default()
        });
        let code = code(&authorize(&mut identity, "common", &[]));
        let first = exchange(&mut identity, &code, VERIFIER).1["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, body) = refresh(&mut identity, &first);
        assert_ne!(body["refresh_token"].as_str().unwrap(), first);
        assert_eq!(refresh(&mut identity, &first).0, 200);
    }

    #[test]
    fn no_offline_access_no_refresh_token() {
        let mut identity = identity(Options::default());
        let challenge = s256(VERIFIER);
        let params = pairs(&[
            ("client_id", "mailroom-test-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "Mail.Read"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]);
        let answer = identity.authorize("common", &params, Instant::now());
        let query = query_of(&answer);
        let code = param(&query, "code").unwrap().to_owned();
        let body = exchange(&mut identity, &code, VERIFIER).1;
        assert!(body.get("refresh_token").is_none());
    }

    #[test]
    fn client_errors() {
        let mut identity = identity(Options::default());
        let now = Instant::now();
        let form = pairs(&[("grant_type", "refresh_token"), ("refresh_token", "x")]);
        let wrong = Some(("mailroom-test-client".to_owned(), "nope".to_owned()));
        let (status, body) = identity.token("common", &form, wrong, now);
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        assert_eq!(body["error_codes"][0], 7000215);
        let unknown = Some(("someone".to_owned(), "mailroom-test-secret".to_owned()));
        assert_eq!(
            identity.token("common", &form, unknown, now).1["error"],
            "unauthorized_client"
        );
        let good = Some((
            "mailroom-test-client".to_owned(),
            "mailroom-test-secret".to_owned(),
        ));
        let (status, body) = identity.token("nowhere", &form, good.clone(), now);
        assert_eq!(
            (status, body["error_codes"][0].as_u64()),
            (400, Some(90002))
        );
        let password = pairs(&[("grant_type", "password")]);
        assert_eq!(
            identity.token("common", &password, good, now).1["error"],
            "unsupported_grant_type"
        );
    }

    #[test]
    fn scopes_take_their_full_form() {
        assert_eq!(
            normalize_scopes(
                "openid Mail.Read offline_access https://graph.microsoft.com/User.Read Mail.Read"
            ),
            vec![
                "openid",
                "https://graph.microsoft.com/Mail.Read",
                "offline_access",
                "https://graph.microsoft.com/User.Read"
            ]
        );
    }
}
