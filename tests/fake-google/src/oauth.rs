//! The OAuth 2.0 authorization server, as Google's web-server flow documents
//! it (<https://developers.google.com/identity/protocols/oauth2/web-server>):
//!
//! * the authorization endpoint checks the client, `response_type=code`, a
//!   scope that includes `https://mail.google.com/` and a PKCE S256 challenge,
//!   then — nobody being there to click — redirects at once with a code or
//!   `error=access_denied`, as [`Consent`] says;
//! * codes are single-use and live ten minutes, bound to the redirect URI, the
//!   challenge and the account;
//! * the token endpoint exchanges a code (verifying the PKCE verifier) or a
//!   refresh token, and answers errors in Google's
//!   `{"error","error_description"}` shape;
//! * a refresh token comes only with `access_type=offline`, and — like Google —
//!   on a later consent of the same account only with `prompt=consent`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use mailroom_fake_https::oauth::{
    client_credentials, is_pkce_string, random_token, s256, with_query,
};
use mailroom_fake_https::request::{Params, param};
use serde_json::{Value, json};

use crate::{Consent, Options};

/// The scope every authorization must include: full Gmail access.
pub(crate) const GMAIL_SCOPE: &str = "https://mail.google.com/";
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// What the authorization endpoint answers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Authorization {
    /// 302 to this URL.
    Redirect(String),
    /// 400 with this text, like Google's error page.
    Refused(String),
}

struct Code {
    user: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    offline: bool,
    prompt_consent: bool,
    expires: Instant,
}

struct AccessToken {
    user: String,
    expires: Instant,
    revoked: bool,
}

struct RefreshToken {
    user: String,
    scope: String,
}

pub(crate) struct OAuth {
    client_id: String,
    client_secret: String,
    access_lifetime: Duration,
    rotate_refresh_tokens: bool,
    consent: Option<Consent>,
    codes: HashMap<String, Code>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    /// Accounts (lowercased) that hold a grant: their next consent is not
    /// their first.
    granted: HashSet<String>,
    issued: Vec<String>,
}

/// A token endpoint answer: status and JSON body.
pub(crate) type TokenAnswer = (u16, Value);

fn token_error(status: u16, error: &str, description: &str) -> TokenAnswer {
    (
        status,
        json!({ "error": error, "error_description": description }),
    )
}

impl OAuth {
    pub(crate) fn new(options: &Options) -> Self {
        OAuth {
            client_id: options.client_id.clone(),
            client_secret: options.client_secret.clone(),
            access_lifetime: options.access_token_lifetime,
            rotate_refresh_tokens: options.rotate_refresh_tokens,
            consent: None,
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            granted: HashSet::new(),
            issued: Vec::new(),
        }
    }

    pub(crate) fn set_consent(&mut self, consent: Consent) {
        self.consent = Some(consent);
    }

    pub(crate) fn issued(&self) -> &[String] {
        &self.issued
    }

    /// The authorization endpoint. `default_user` consents when the test never
    /// set a [`Consent`]; `has_user` tells whether an account exists.
    pub(crate) fn authorize(
        &mut self,
        params: &Params,
        default_user: Option<&str>,
        has_user: impl Fn(&str) -> bool,
        now: Instant,
    ) -> Authorization {
        let refuse = |error: &str, detail: &str| {
            Authorization::Refused(format!(
                "Access blocked: authorization error\n\nError 400: {error}\n{detail}\n"
            ))
        };
        let Some(client_id) = param(params, "client_id") else {
            return refuse("invalid_request", "Missing required parameter: client_id");
        };
        if client_id != self.client_id {
            return refuse("invalid_client", "The OAuth client was not found.");
        }
        let Some(redirect_uri) = param(params, "redirect_uri") else {
            return refuse(
                "invalid_request",
                "Missing required parameter: redirect_uri",
            );
        };
        if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
            return refuse(
                "invalid_request",
                "Invalid parameter value for redirect_uri",
            );
        }
        match param(params, "response_type") {
            Some("code") => {}
            Some(other) => {
                return refuse(
                    "unsupported_response_type",
                    &format!("Invalid response_type: {other}"),
                );
            }
            None => {
                return refuse(
                    "invalid_request",
                    "Missing required parameter: response_type",
                );
            }
        }
        let Some(scope) = param(params, "scope") else {
            return refuse("invalid_request", "Missing required parameter: scope");
        };
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        if !scopes.contains(&GMAIL_SCOPE) {
            return refuse(
                "invalid_scope",
                &format!("This fake grants only requests for {GMAIL_SCOPE}"),
            );
        }
        let Some(challenge) = param(params, "code_challenge") else {
            return refuse(
                "invalid_request",
                "Missing required parameter: code_challenge",
            );
        };
        if param(params, "code_challenge_method") != Some("S256") {
            return refuse("invalid_request", "code_challenge_method must be S256");
        }
        if !is_pkce_string(challenge) {
            return refuse("invalid_request", "Invalid code_challenge");
        }
        let offline = match param(params, "access_type") {
            None | Some("online") => false,
            Some("offline") => true,
            Some(other) => {
                return refuse("invalid_request", &format!("Invalid access_type: {other}"));
            }
        };
        let prompt_consent = param(params, "prompt")
            .is_some_and(|prompt| prompt.split_whitespace().any(|p| p == "consent"));
        let state = param(params, "state");

        let user = match &self.consent {
            Some(Consent::Deny) => {
                let mut pairs = vec![("error", "access_denied")];
                pairs.extend(state.map(|s| ("state", s)));
                return Authorization::Redirect(with_query(redirect_uri, &pairs));
            }
            Some(Consent::Grant(user)) => user.clone(),
            None => match default_user {
                Some(user) => user.to_owned(),
                None => {
                    return refuse(
                        "access_denied",
                        "There is no Google account to sign in with.",
                    );
                }
            },
        };
        if !has_user(&user) {
            return refuse("access_denied", &format!("No such Google account: {user}"));
        }

        let code = random_token("4/0", 32);
        let scope = scopes.join(" ");
        let mut pairs = Vec::new();
        pairs.extend(state.map(|s| ("state", s)));
        pairs.push(("code", code.as_str()));
        pairs.push(("scope", scope.as_str()));
        let location = with_query(redirect_uri, &pairs);
        self.codes.insert(
            code.clone(),
            Code {
                user,
                redirect_uri: redirect_uri.to_owned(),
                challenge: challenge.to_owned(),
                scope,
                offline,
                prompt_consent,
                expires: now + CODE_LIFETIME,
            },
        );
        Authorization::Redirect(location)
    }

    /// The token endpoint: `form` is the request body, `basic` the client
    /// credentials of an `Authorization: Basic` header if there was one.
    pub(crate) fn token(
        &mut self,
        form: &Params,
        basic: Option<(String, String)>,
        now: Instant,
    ) -> TokenAnswer {
        let (client_id, client_secret) = client_credentials(basic, |name| param(form, name));
        let Some(client_id) = client_id else {
            return token_error(
                400,
                "invalid_request",
                "Could not determine client ID from request.",
            );
        };
        if client_id != self.client_id {
            return token_error(401, "invalid_client", "The OAuth client was not found.");
        }
        let Some(client_secret) = client_secret else {
            return token_error(400, "invalid_request", "client_secret is missing.");
        };
        if client_secret != self.client_secret {
            return token_error(401, "invalid_client", "Unauthorized");
        }
        match param(form, "grant_type") {
            Some("authorization_code") => self.exchange_code(form, now),
            Some("refresh_token") => self.refresh(form, now),
            Some(other) => token_error(
                400,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            ),
            None => token_error(
                400,
                "invalid_request",
                "Missing required parameter: grant_type",
            ),
        }
    }

    fn exchange_code(&mut self, form: &Params, now: Instant) -> TokenAnswer {
        let Some(code) = param(form, "code") else {
            return token_error(400, "invalid_request", "Missing required parameter: code");
        };
        let Some(redirect_uri) = param(form, "redirect_uri") else {
            return token_error(
                400,
                "invalid_request",
                "Missing required parameter: redirect_uri",
            );
        };
        // A code is good for one presentation, whatever its outcome.
        let Some(grant) = self.codes.remove(code) else {
            return token_error(400, "invalid_grant", "Malformed auth code.");
        };
        if now >= grant.expires {
            return token_error(400, "invalid_grant", "Bad Request");
        }
        if grant.redirect_uri != redirect_uri {
            return token_error(400, "redirect_uri_mismatch", "Bad Request");
        }
        let Some(verifier) = param(form, "code_verifier") else {
            return token_error(400, "invalid_grant", "Missing code verifier.");
        };
        if !is_pkce_string(verifier) || s256(verifier) != grant.challenge {
            return token_error(400, "invalid_grant", "Invalid code verifier.");
        }

        let user_key = grant.user.to_ascii_lowercase();
        let first_consent = !self.granted.contains(&user_key);
        let access_token = self.issue_access(&grant.user, now);
        let mut body = json!({
            "access_token": access_token,
            "expires_in": self.access_lifetime.as_secs(),
            "scope": grant.scope,
            "token_type": "Bearer",
        });
        if grant.offline && (first_consent || grant.prompt_consent) {
            let refresh_token = self.issue_refresh(&grant.user, &grant.scope);
            self.granted.insert(user_key);
            body["refresh_token"] = json!(refresh_token);
        }
        (200, body)
    }

    fn refresh(&mut self, form: &Params, now: Instant) -> TokenAnswer {
        let Some(token) = param(form, "refresh_token") else {
            return token_error(
                400,
                "invalid_request",
                "Missing required parameter: refresh_token",
            );
        };
        let Some(grant) = self.refresh.get(token) else {
            return token_error(400, "invalid_grant", "Token has been expired or revoked.");
        };
        let (user, scope) = (grant.user.clone(), grant.scope.clone());
        let access_token = self.issue_access(&user, now);
        let mut body = json!({
            "access_token": access_token,
            "expires_in": self.access_lifetime.as_secs(),
            "scope": scope,
            "token_type": "Bearer",
        });
        if self.rotate_refresh_tokens {
            self.refresh.remove(token);
            body["refresh_token"] = json!(self.issue_refresh(&user, &scope));
        }
        (200, body)
    }

    fn issue_access(&mut self, user: &str, now: Instant) -> String {
        let token = random_token("ya29.", 32);
        self.access.insert(
            token.clone(),
            AccessToken {
                user: user.to_owned(),
                expires: now + self.access_lifetime,
                revoked: false,
            },
        );
        self.issued.push(token.clone());
        token
    }

    fn issue_refresh(&mut self, user: &str, scope: &str) -> String {
        let token = random_token("1//0", 32);
        self.refresh.insert(
            token.clone(),
            RefreshToken {
                user: user.to_owned(),
                scope: scope.to_owned(),
            },
        );
        self.issued.push(token.clone());
        token
    }

    /// The account an access token stands for, while it works.
    pub(crate) fn user_of(&self, access_token: &str, now: Instant) -> Option<&str> {
        let token = self.access.get(access_token)?;
        (!token.revoked && now < token.expires).then_some(token.user.as_str())
    }

    pub(crate) fn expire_access_tokens(&mut self) {
        for token in self.access.values_mut() {
            token.revoked = true;
        }
    }

    /// Revokes every token of the account and forgets its grant.
    pub(crate) fn revoke_user(&mut self, email: &str) {
        self.refresh
            .retain(|_, token| !token.user.eq_ignore_ascii_case(email));
        for token in self.access.values_mut() {
            if token.user.eq_ignore_ascii_case(email) {
                token.revoked = true;
            }
        }
        self.granted.remove(&email.to_ascii_lowercase());
    }

    /// The revocation endpoint: revoking either kind of token revokes the
    /// account's grant. False when the token is unknown or already dead.
    pub(crate) fn revoke(&mut self, token: &str) -> bool {
        let user = if let Some(grant) = self.refresh.get(token) {
            grant.user.clone()
        } else if let Some(access) = self.access.get(token).filter(|a| !a.revoked) {
            access.user.clone()
        } else {
            return false;
        };
        self.revoke_user(&user);
        true
    }
}

#[cfg(test)]
mod tests {
    use mailroom_fake_https::testing::{code_redemption, pairs};

    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const REDIRECT: &str = "https://mailroom.test/oauth/callback";

    fn server() -> OAuth {
        OAuth::new(&Options::default())
    }

    fn authorize(oauth: &mut OAuth, extra: &[(&str, &str)], now: Instant) -> Authorization {
        let challenge = s256(VERIFIER);
        let mut params = vec![
            ("client_id", "mailroom-test-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid https://mail.google.com/"),
            ("state", "xyz"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        params.extend_from_slice(extra);
        oauth.authorize(
            &pairs(&params),
            Some("ann@example.com"),
            |u| u == "ann@example.com",
            now,
        )
    }

    fn code_of(answer: &Authorization) -> String {
        let Authorization::Redirect(location) = answer else {
            panic!("expected a redirect, got {answer:?}");
        };
        let query = location.split_once('?').unwrap().1;
        let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        assert_eq!(param(&params, "state"), Some("xyz"));
        param(&params, "code").unwrap().to_owned()
    }

    fn exchange(oauth: &mut OAuth, code: &str, verifier: &str, now: Instant) -> TokenAnswer {
        let form = pairs(&code_redemption(code, REDIRECT, verifier));
        oauth.token(&form, None, now)
    }

    #[test]
    fn code_flow_with_pkce_issues_tokens_once() {
        let mut oauth = server();
        let now = Instant::now();
        let code = code_of(&authorize(&mut oauth, &[("access_type", "offline")], now));
        let (status, body) = exchange(&mut oauth, &code, VERIFIER, now);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], "openid https://mail.google.com/");
        let access = body["access_token"].as_str().unwrap();
        assert!(access.starts_with("ya29."));
        assert!(body["refresh_token"].is_string());
        assert_eq!(oauth.user_of(access, now), Some("ann@example.com"));
        assert_eq!(oauth.issued().len(), 2);

        let (status, body) = exchange(&mut oauth, &code, VERIFIER, now);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }

    #[test]
    fn a_wrong_verifier_is_invalid_grant() {
        let mut oauth = server();
        let now = Instant::now();
        let code = code_of(&authorize(&mut oauth, &[], now));
        let wrong = "a".repeat(43);
        let (status, body) = exchange(&mut oauth, &code, &wrong, now);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert!(oauth.issued().is_empty());
    }

    #[test]
    fn codes_expire_after_ten_minutes() {
        let mut oauth = server();
        let now = Instant::now();
        let code = code_of(&authorize(&mut oauth, &[], now));
        let later = now + Duration::from_secs(601);
        let (status, body) = exchange(&mut oauth, &code, VERIFIER, later);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }

    #[test]
    fn refresh_tokens_only_offline_and_on_first_or_forced_consent() {
        let mut oauth = server();
        let now = Instant::now();
        let online = code_of(&authorize(&mut oauth, &[], now));
        assert!(
            exchange(&mut oauth, &online, VERIFIER, now)
                .1
                .get("refresh_token")
                .is_none()
        );

        let first = code_of(&authorize(&mut oauth, &[("access_type", "offline")], now));
        assert!(exchange(&mut oauth, &first, VERIFIER, now).1["refresh_token"].is_string());

        let again = code_of(&authorize(&mut oauth, &[("access_type", "offline")], now));
        assert!(
            exchange(&mut oauth, &again, VERIFIER, now)
                .1
                .get("refresh_token")
                .is_none()
        );

        let forced = code_of(&authorize(
            &mut oauth,
            &[("access_type", "offline"), ("prompt", "consent")],
            now,
        ));
        assert!(exchange(&mut oauth, &forced, VERIFIER, now).1["refresh_token"].is_string());
    }

    #[test]
    fn refresh_rotation_retires_the_old_token() {
        let mut oauth = OAuth::new(&Options {
            rotate_refresh_tokens: true,
            ..Options::default()
        });
        let now = Instant::now();
        let code = code_of(&authorize(&mut oauth, &[("access_type", "offline")], now));
        let old = exchange(&mut oauth, &code, VERIFIER, now).1["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let refresh = |oauth: &mut OAuth, token: &str| {
            let form = pairs(&[("grant_type", "refresh_token"), ("refresh_token", token)]);
            let basic = Some((
                "mailroom-test-client".to_owned(),
                "mailroom-test-secret".to_owned(),
            ));
            oauth.token(&form, basic, now)
        };
        let (status, body) = refresh(&mut oauth, &old);
        assert_eq!(status, 200);
        let new = body["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert_eq!(refresh(&mut oauth, &old).1["error"], "invalid_grant");
        assert_eq!(refresh(&mut oauth, &new).0, 200);

        oauth.revoke_user("ANN@example.com");
        assert_eq!(refresh(&mut oauth, &new).1["error"], "invalid_grant");
    }

    #[test]
    fn client_errors_have_googles_codes() {
        let mut oauth = server();
        let now = Instant::now();
        let form = pairs(&[("grant_type", "refresh_token"), ("refresh_token", "x")]);
        let wrong_secret = Some(("mailroom-test-client".to_owned(), "nope".to_owned()));
        assert_eq!(oauth.token(&form, wrong_secret, now).0, 401);
        let unknown = Some(("someone".to_owned(), "mailroom-test-secret".to_owned()));
        assert_eq!(
            oauth.token(&form, unknown, now).1["error"],
            "invalid_client"
        );
        let good = Some((
            "mailroom-test-client".to_owned(),
            "mailroom-test-secret".to_owned(),
        ));
        let password = pairs(&[("grant_type", "password")]);
        assert_eq!(
            oauth.token(&password, good, now).1["error"],
            "unsupported_grant_type"
        );
    }

    #[test]
    fn authorization_checks_its_parameters() {
        let mut oauth = server();
        let now = Instant::now();
        let refused = |answer: Authorization| matches!(answer, Authorization::Refused(_));
        let base = |drop: &str| {
            let challenge = s256(VERIFIER);
            pairs(
                &[
                    ("client_id", "mailroom-test-client"),
                    ("redirect_uri", REDIRECT),
                    ("response_type", "code"),
                    ("scope", GMAIL_SCOPE),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                ]
                .into_iter()
                .filter(|(k, _)| *k != drop)
                .collect::<Vec<_>>(),
            )
        };
        let has = |u: &str| u == "ann@example.com";
        for missing in [
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "code_challenge",
            "code_challenge_method",
        ] {
            assert!(
                refused(oauth.authorize(&base(missing), Some("ann@example.com"), has, now)),
                "{missing}"
            );
        }
        let mut other_scope = base("scope");
        other_scope.push((
            "scope".to_owned(),
            "https://www.googleapis.com/auth/gmail.readonly".to_owned(),
        ));
        assert!(refused(oauth.authorize(
            &other_scope,
            Some("ann@example.com"),
            has,
            now
        )));
        assert!(!refused(oauth.authorize(
            &base(""),
            Some("ann@example.com"),
            has,
            now
        )));

        oauth.set_consent(Consent::Deny);
        let Authorization::Redirect(location) =
            oauth.authorize(&base(""), Some("ann@example.com"), has, now)
        else {
            panic!("a denial redirects");
        };
        assert_eq!(location, format!("{REDIRECT}?error=access_denied"));
    }
}
