//! Every endpoint of the API, declared once: what the router dispatches on and what
//! `/v1/openapi.json` describes (method, path, parameters, body and answer shapes, the headers
//! it honours), next to the handler that serves it. docs/api.md says what each does.

use super::auth::Caller;
use super::error::ApiError;
use super::{
    App, accounts, connectors, events, idempotent, json, messages, oauth, openapi, outbox, records,
    users, webhooks,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use warp::reply::Response;

/// What a handler gets: the app, the authenticated caller, the path's parameters in order,
/// the query, the body and the headers it honours.
pub struct Call {
    pub app: Arc<App>,
    pub(super) caller: Option<Caller>,
    pub(super) params: Vec<String>,
    pub query: HashMap<String, String>,
    pub(super) body: Bytes,
    pub(super) content_type: Option<String>,
    pub(super) accept: Option<String>,
    pub idempotency_key: Option<String>,
}

impl Call {
    /// The caller of a route that authenticates.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller.as_ref().ok_or_else(ApiError::unauthorized)
    }

    /// The path parameter at `index` (`{id}` segments, left to right).
    pub fn param(&self, index: usize) -> &str {
        self.params.get(index).map_or("", String::as_str)
    }

    /// Whether the caller asked for JSON (`Accept: application/json`) rather than a page.
    pub fn wants_json(&self) -> bool {
        self.accept
            .as_deref()
            .is_some_and(|a| a.to_ascii_lowercase().contains("application/json"))
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
    }
}

pub type Handler = fn(Call) -> BoxFuture<'static, Result<Response, ApiError>>;

/// How large a route's body may be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// `api.max_body_bytes`.
    Standard,
    /// Room for base64-encoded attachments besides (`api.max_attachment_bytes`).
    WithAttachments,
    /// A connector's component, raw (`connectors.max_upload_mib`).
    Component,
}

impl BodyLimit {
    /// The error code of a body over the limit (docs/api.md names `too_large` for uploads).
    pub fn too_large_code(self) -> &'static str {
        match self {
            Self::Component => "too_large",
            Self::Standard | Self::WithAttachments => "payload_too_large",
        }
    }
}

/// A query parameter a route reads: name, its OpenAPI schema (JSON), and what it does.
pub type QueryParam = (&'static str, &'static str, &'static str);

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Whether a bearer token is needed.
    pub auth: bool,
    /// With `auth`: a request without a token still reaches the handler (with no caller),
    /// which decides (`/metrics` when `metrics.public`).
    pub token_optional: bool,
    /// The request body's schema.
    pub body: Option<&'static str>,
    pub body_limit: BodyLimit,
    /// The success status and its body's schema.
    pub ok: (u16, Option<&'static str>),
    /// Answers 201 with the same body when it created what it was given.
    pub may_create: bool,
    /// A paged collection (`limit`, `cursor`).
    pub paged: bool,
    /// Query parameters besides paging.
    pub query: &'static [QueryParam],
    /// Honours `Idempotency-Key`.
    pub idempotent: bool,
    /// Where a browser lands: answers with a redirect or a page unless JSON is asked for.
    pub browser: bool,
    pub handler: Handler,
}

const fn route(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        summary,
        auth: true,
        token_optional: false,
        body: None,
        body_limit: BodyLimit::Standard,
        ok: (200, None),
        may_create: false,
        paged: false,
        query: &[],
        idempotent: false,
        browser: false,
        handler,
    }
}

impl Route {
    const fn public(mut self) -> Self {
        self.auth = false;
        self
    }
    const fn token_optional(mut self) -> Self {
        self.token_optional = true;
        self
    }
    const fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }
    const fn ok(mut self, status: u16, schema: Option<&'static str>) -> Self {
        self.ok = (status, schema);
        self
    }
    const fn may_create(mut self) -> Self {
        self.may_create = true;
        self
    }
    const fn paged(mut self, item: &'static str) -> Self {
        self.paged = true;
        self.ok = (200, Some(item));
        self
    }
    const fn query(mut self, params: &'static [QueryParam]) -> Self {
        self.query = params;
        self
    }
    const fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
    const fn browser(mut self) -> Self {
        self.browser = true;
        self
    }
    const fn with_attachments(mut self) -> Self {
        self.body_limit = BodyLimit::WithAttachments;
        self
    }
    /// The body is a component's bytes (`application/wasm`), not JSON.
    const fn component_body(mut self) -> Self {
        self.body = Some("Component");
        self.body_limit = BodyLimit::Component;
        self
    }

    /// Whether the route reads the query string.
    pub fn reads_query(&self) -> bool {
        self.paged || !self.query.is_empty()
    }

    /// The path parameters of `path` (percent-decoded) when it is this route's, else
    /// `None`; and how many segments matched literally (the more, the better the match).
    pub fn matches(&self, path: &str) -> Option<(Vec<String>, usize)> {
        let mut template = self.path.split('/');
        let mut given = path.split('/');
        let mut params = Vec::new();
        let mut literal = 0;
        loop {
            match (template.next(), given.next()) {
                (None, None) => return Some((params, literal)),
                (Some(t), Some(g)) if t.starts_with('{') => {
                    let value = percent_encoding::percent_decode_str(g).decode_utf8().ok()?;
                    if value.is_empty() {
                        return None;
                    }
                    params.push(value.into_owned());
                }
                (Some(t), Some(g)) if t == g => literal += 1,
                _ => return None,
            }
        }
    }
}

/// Wraps a handler body: `handle!(call => expression)`.
macro_rules! handle {
    ($call:ident => $body:expr) => {
        |$call: Call| -> BoxFuture<'static, Result<Response, ApiError>> {
            Box::pin(async move { $body })
        }
    };
}

const PAGE_OF_MESSAGES: &[QueryParam] = &[
    (
        "folder",
        r#"{"type": "string"}"#,
        "Only messages in this folder (its id)",
    ),
    (
        "unread",
        r#"{"type": "boolean"}"#,
        "Only unread (true) or read (false) messages",
    ),
    (
        "q",
        r#"{"type": "string"}"#,
        "Words that must all occur in the subject, an address or the snippet",
    ),
];
const REMOTE: QueryParam = (
    "remote",
    r#"{"type": "string", "enum": ["block", "allow"]}"#,
    "`allow` to keep remote images",
);
const MESSAGE_VIEW: &[QueryParam] = &[
    (
        "html",
        r#"{"type": "string", "enum": ["sanitized", "raw"]}"#,
        "`raw` for the original HTML (never render it unsandboxed)",
    ),
    REMOTE,
];
const TIMELINE_VIEW: &[QueryParam] = &[REMOTE];
const EVENTS: &[QueryParam] = &[
    (
        "after",
        r#"{"type": "integer", "minimum": 0, "maximum": 18446744073709551615}"#,
        "Events after this sequence number",
    ),
    (
        "wait",
        r#"{"type": "integer", "minimum": 0, "maximum": 60}"#,
        "Seconds to wait for an event when none is there",
    ),
];
const CONNECTOR_UPLOAD: &[QueryParam] = &[(
    "replace",
    r#"{"type": "boolean"}"#,
    "Replace the connector loaded under the same id",
)];
const CONNECTOR_REMOVE: &[QueryParam] = &[(
    "force",
    r#"{"type": "boolean"}"#,
    "Remove it even while accounts use it (they are disabled)",
)];
const OAUTH_CALLBACK: &[QueryParam] = &[
    (
        "state",
        r#"{"type": "string"}"#,
        "The sign-in's state, as the start gave it to the provider",
    ),
    (
        "code",
        r#"{"type": "string"}"#,
        "The provider's authorization code",
    ),
    (
        "error",
        r#"{"type": "string"}"#,
        "The provider's error (`access_denied` when the user declined)",
    ),
];
const RECORDS: &[QueryParam] = &[(
    "created_by",
    r#"{"type": "string", "enum": ["crm", "mailroom"]}"#,
    "Only records created that way",
)];

pub const ROUTES: &[Route] = &[
    route(
        "get",
        "/healthz",
        "Liveness",
        handle!(_c => Ok(json(&serde_json::json!({"status": "ok"})))),
    )
    .public()
    .ok(200, Some("Health")),
    route(
        "get",
        "/metrics",
        "Prometheus metrics in the text format (admin or service; anyone when metrics.public)",
        handle!(c => super::scrape(&c.app, c.caller.as_ref()).await),
    )
    .token_optional(),
    route(
        "get",
        "/v1/openapi.json",
        "This document",
        handle!(_c => Ok(json(&openapi::document()))),
    )
    .public(),
    route(
        "get",
        "/v1/connectors",
        "Loaded connectors",
        handle!(c => connectors::list(&c.app, &c.query).await),
    )
    .paged("Connector"),
    route(
        "post",
        "/v1/connectors",
        "Load a connector from its component (admin)",
        handle!(c => connectors::upload(&c.app, c.caller()?, &c.query, c.content_type.as_deref(), c.body.clone()).await),
    )
    .component_body()
    .query(CONNECTOR_UPLOAD)
    .ok(200, Some("Connector"))
    .may_create(),
    route(
        "get",
        "/v1/connectors/{id}",
        "A loaded connector",
        handle!(c => connectors::get(&c.app, c.param(0)).await),
    )
    .ok(200, Some("Connector")),
    route(
        "delete",
        "/v1/connectors/{id}",
        "Unload an uploaded connector (admin)",
        handle!(c => connectors::remove(&c.app, c.caller()?, c.param(0), &c.query).await),
    )
    .query(CONNECTOR_REMOVE)
    .ok(204, None),
    route(
        "patch",
        "/v1/connectors/{id}",
        "Grant a connector the hosts it asks for (admin)",
        handle!(c => connectors::update(&c.app, c.caller()?, c.param(0), &c.json()?).await),
    )
    .body("ConnectorPatch")
    .ok(200, Some("Connector")),
    // The CRM's webhooks.
    route(
        "post",
        "/v1/webhooks",
        "Register an endpoint for events (admin or service); its secret is shown only here",
        handle!(c => webhooks::create(&c.app, c.caller()?, &c.json()?).await),
    )
    .body("WebhookCreate")
    .ok(201, Some("WebhookCreated")),
    route(
        "get",
        "/v1/webhooks",
        "Webhook endpoints (admin or service)",
        handle!(c => webhooks::list(&c.app, c.caller()?, &c.query).await),
    )
    .paged("Webhook"),
    route(
        "get",
        "/v1/webhooks/{id}",
        "A webhook endpoint (admin or service)",
        handle!(c => webhooks::get(&c.app, c.caller()?, c.param(0)).await),
    )
    .ok(200, Some("Webhook")),
    route(
        "patch",
        "/v1/webhooks/{id}",
        "Change an endpoint's URL or event types, or enable or disable it (admin or service)",
        handle!(c => webhooks::update(&c.app, c.caller()?, c.param(0), &c.json()?).await),
    )
    .body("WebhookPatch")
    .ok(200, Some("Webhook")),
    route(
        "delete",
        "/v1/webhooks/{id}",
        "Remove an endpoint and its deliveries (admin or service)",
        handle!(c => webhooks::remove(&c.app, c.caller()?, c.param(0)).await),
    )
    .ok(204, None),
    route(
        "get",
        "/v1/webhooks/{id}/deliveries",
        "An endpoint's deliveries, newest first (admin or service)",
        handle!(c => webhooks::deliveries(&c.app, c.caller()?, c.param(0), &c.query).await),
    )
    .paged("Delivery"),
    route(
        "post",
        "/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
        "Deliver again, before the endpoint's later deliveries (admin or service)",
        handle!(c => webhooks::retry(&c.app, c.caller()?, c.param(0), c.param(1)).await),
    )
    .ok(202, Some("Delivery")),
    // Accounts that sign in with their provider.
    route(
        "post",
        "/v1/oauth/{connector}/start",
        "Start signing in an account with its provider",
        handle!(c => oauth::start(&c.app, c.caller()?, c.param(0), &c.json()?).await),
    )
    .body("OauthStart")
    .ok(200, Some("OauthStarted")),
    route(
        "get",
        "/v1/oauth/callback",
        "Where the provider sends the browser back",
        handle!(c => Ok(oauth::callback(&c.app, &c.query, c.wants_json()).await)),
    )
    .public()
    .browser()
    .query(OAUTH_CALLBACK)
    .ok(200, Some("Account"))
    .may_create(),
    // Users and tokens.
    route(
        "post",
        "/v1/users",
        "Create a user (admin)",
        handle!(c => users::create(&c.app, c.caller()?, &c.json()?).await),
    )
    .body("UserCreate")
    .ok(201, Some("User")),
    route(
        "get",
        "/v1/users",
        "List users (admin)",
        handle!(c => users::list(&c.app, c.caller()?, &c.query).await),
    )
    .paged("User"),
    route(
        "get",
        "/v1/users/{id}",
        "Get a user (admin)",
        handle!(c => users::get(&c.app, c.caller()?, c.param(0)).await),
    )
    .ok(200, Some("User")),
    route(
        "patch",
        "/v1/users/{id}",
        "Change a user (admin)",
        handle!(c => users::update(&c.app, c.caller()?, c.param(0), &c.json()?).await),
    )
    .body("UserPatch")
    .ok(200, Some("User")),
    route(
        "get",
        "/v1/users/{id}/tokens",
        "A user's tokens, never their secrets (admin)",
        handle!(c => users::list_tokens(&c.app, c.caller()?, c.param(0), &c.query).await),
    )
    .paged("TokenInfo"),
    route(
        "delete",
        "/v1/users/{id}/tokens/{token_id}",
        "Revoke a user's token (admin)",
        handle!(c => users::revoke_token(&c.app, c.caller()?, Some(c.param(0)), c.param(1)).await),
    )
    .ok(204, None),
    route(
        "get",
        "/v1/me",
        "The caller",
        handle!(c => users::me(&c.app, c.caller()?).await),
    )
    .ok(200, Some("Me")),
    route(
        "patch",
        "/v1/me",
        "Change the caller's signature",
        handle!(c => users::update_me(&c.app, c.caller()?, &c.json()?).await),
    )
    .body("MePatch")
    .ok(200, Some("Me")),
    route(
        "post",
        "/v1/me/tokens",
        "Create a token for the caller",
        handle!(c => users::create_token(&c.app, c.caller()?, &c.json()?).await),
    )
    .body("TokenCreate")
    .ok(201, Some("NewToken")),
    route(
        "delete",
        "/v1/me/tokens/{token_id}",
        "Revoke one of the caller's tokens",
        handle!(c => users::revoke_token(&c.app, c.caller()?, None, c.param(0)).await),
    )
    .ok(204, None),
    // Accounts.
    route(
        "post",
        "/v1/accounts/test",
        "Test a connection and list its folders",
        handle!(c => accounts::test(&c.app, c.caller()?, &c.json()?).await),
    )
    .body("Connection")
    .ok(200, Some("TestResult")),
    route(
        "post",
        "/v1/accounts",
        "Connect an account",
        handle!(c => {
            let (caller, body) = (c.caller()?, c.json()?);
            idempotent(&c.app, caller, "POST /v1/accounts", c.idempotency_key.clone(), || {
                accounts::create(&c.app, caller, &body)
            })
            .await
        }),
    )
    .body("AccountCreate")
    .idempotent()
    .ok(201, Some("Account")),
    route(
        "get",
        "/v1/accounts",
        "Accounts the caller may see, primary first",
        handle!(c => accounts::list(&c.app, c.caller()?, &c.query).await),
    )
    .paged("Account"),
    route(
        "get",
        "/v1/accounts/{id}",
        "Get an account",
        handle!(c => accounts::get(&c.app, c.caller()?, c.param(0)).await),
    )
    .ok(200, Some("Account")),
    route(
        "patch",
        "/v1/accounts/{id}",
        "Change an account",
        handle!(c => accounts::update(&c.app, c.caller()?, c.param(0), &c.json()?).await),
    )
    .body("AccountPatch")
    .ok(200, Some("Account")),
    route(
        "delete",
        "/v1/accounts/{id}",
        "Delete an account with everything Mailroom holds for it",
        handle!(c => accounts::delete(&c.app, c.caller()?, c.param(0)).await),
    )
    .ok(204, None),
    route(
        "put",
        "/v1/accounts/{id}/primary",
        "Make the account the caller's primary",
        handle!(c => accounts::set_primary(&c.app, c.caller()?, c.param(0)).await),
    )
    .ok(200, Some("Account")),
    route(
        "delete",
        "/v1/accounts/{id}/primary",
        "Unset the caller's primary",
        handle!(c => accounts::unset_primary(&c.app, c.caller()?, c.param(0)).await),
    )
    .ok(204, None),
    route(
        "post",
        "/v1/accounts/{id}/reconnect",
        "Re-test and re-enable an account",
        handle!(c => accounts::reconnect(&c.app, c.caller()?, c.param(0), &c.json()?).await),
    )
    .body("Reconnect")
    .ok(200, Some("Account")),
    route(
        "get",
        "/v1/accounts/{id}/folders",
        "An account's folders",
        handle!(c => accounts::folders(&c.app, c.caller()?, c.param(0), &c.query).await),
    )
    .paged("AccountFolderCounts"),
    route(
        "post",
        "/v1/accounts/{id}/sync",
        "Ask for a sync of the account",
        handle!(c => accounts::sync(&c.app, c.caller()?, c.param(0)).await),
    )
    .ok(202, Some("SyncRequested")),
    // Messages.
    route(
        "get",
        "/v1/accounts/{id}/messages",
        "An account's messages, newest first",
        handle!(c => messages::list(&c.app, c.caller()?, c.param(0), &c.query).await),
    )
    .paged("Message")
    .query(PAGE_OF_MESSAGES),
    route(
        "get",
        "/v1/messages/{id}",
        "A message with its bodies and attachments",
        handle!(c => messages::get(&c.app, c.caller()?, c.param(0), &c.query).await),
    )
    .query(MESSAGE_VIEW)
    .ok(200, Some("MessageFull")),
    route(
        "get",
        "/v1/messages/{id}/raw",
        "A message's raw bytes (message/rfc822)",
        handle!(c => messages::raw(&c.app, c.caller()?, c.param(0)).await),
    ),
    route(
        "get",
        "/v1/messages/{id}/attachments/{attachment_id}",
        "An attachment's contents",
        handle!(c => messages::attachment(&c.app, c.caller()?, c.param(0), c.param(1)).await),
    ),
    route(
        "patch",
        "/v1/messages/{id}",
        "Mark read, unread, starred (pushed to the server)",
        handle!(c => messages::update(&c.app, c.caller()?, c.param(0), &c.json()?).await),
    )
    .body("MessagePatch")
    .ok(200, Some("Message")),
    route(
        "post",
        "/v1/messages/{id}/move",
        "Move a message to another folder",
        handle!(c => messages::move_to(&c.app, c.caller()?, c.param(0), &c.json()?).await),
    )
    .body("MessageMove")
    .ok(200, Some("Message")),
    route(
        "delete",
        "/v1/messages/{id}",
        "Delete a message (to the trash; for good from the trash)",
        handle!(c => messages::delete(&c.app, c.caller()?, c.param(0)).await),
    )
    .ok(204, None),
    route(
        "post",
        "/v1/accounts/{id}/send",
        "Send a message (with the caller's signature)",
        handle!(c => {
            let (caller, body, id) = (c.caller()?, c.json()?, c.param(0));
            let endpoint = format!("POST /v1/accounts/{id}/send");
            let key = c.idempotency_key.clone();
            idempotent(&c.app, caller, &endpoint, key.clone(), || {
                outbox::send(&c.app, caller, id, &body, key.as_deref())
            })
            .await
        }),
    )
    .body("Send")
    .with_attachments()
    .idempotent()
    .ok(202, Some("SendQueued")),
    route(
        "get",
        "/v1/outbox/{id}",
        "How a send went",
        handle!(c => outbox::get(&c.app, c.caller()?, c.param(0)).await),
    )
    .ok(200, Some("OutboxEntry")),
    // Records.
    route(
        "put",
        "/v1/records/{type}/{id}",
        "Create (201) or replace (200) a record: contacts, companies, deals",
        handle!(c => records::put(&c.app, c.caller()?, c.param(0), c.param(1), &c.json()?).await),
    )
    .body("RecordPut")
    .ok(200, Some("Record"))
    .may_create(),
    route(
        "get",
        "/v1/records/{type}/{id}",
        "Get a record",
        handle!(c => records::get(&c.app, c.caller()?, c.param(0), c.param(1)).await),
    )
    .ok(200, Some("Record")),
    route(
        "delete",
        "/v1/records/{type}/{id}",
        "Delete a record and its filing",
        handle!(c => records::delete(&c.app, c.caller()?, c.param(0), c.param(1)).await),
    )
    .ok(204, None),
    route(
        "get",
        "/v1/records/{type}",
        "Records of a type",
        handle!(c => records::list_records(&c.app, c.caller()?, c.param(0), &c.query).await),
    )
    .paged("Record")
    .query(RECORDS),
    route(
        "get",
        "/v1/records/{type}/{id}/messages",
        "A record's messages across the accounts the caller may open, newest first",
        handle!(c => records::timeline(&c.app, c.caller()?, c.param(0), c.param(1), &c.query).await),
    )
    .paged("Message"),
    route(
        "get",
        "/v1/records/{type}/{id}/messages/{message_id}",
        "A message on a record's timeline",
        handle!(c => {
            let caller = c.caller()?;
            records::timeline_message(&c.app, caller, c.param(0), c.param(1), c.param(2), &c.query)
                .await
        }),
    )
    .query(TIMELINE_VIEW)
    .ok(200, Some("MessageFull")),
    route(
        "get",
        "/v1/records/{type}/{id}/messages/{message_id}/attachments/{attachment_id}",
        "An attachment of a message on a record's timeline",
        handle!(c => {
            let caller = c.caller()?;
            let (kind, id, message, attachment) = (c.param(0), c.param(1), c.param(2), c.param(3));
            records::timeline_attachment(&c.app, caller, kind, id, message, attachment).await
        }),
    ),
    route(
        "get",
        "/v1/events",
        "The event log",
        handle!(c => events::list(&c.app, c.caller()?, &c.query).await),
    )
    .paged("Event")
    .query(EVENTS),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn find(method: &str, path: &str) -> Option<(&'static Route, Vec<String>)> {
        ROUTES
            .iter()
            .filter(|r| r.method == method)
            .filter_map(|r| {
                r.matches(path)
                    .map(|(params, literal)| (r, params, literal))
            })
            .max_by_key(|(_, _, literal)| *literal)
            .map(|(r, params, _)| (r, params))
    }

    #[test]
    fn a_path_finds_its_route_and_decoded_parameters() {
        let (route, params) = find("get", "/v1/records/deals/crm%3A42/messages").unwrap();
        assert_eq!(route.path, "/v1/records/{type}/{id}/messages");
        assert_eq!(params, ["deals", "crm:42"]);
        let (route, _) = find("post", "/v1/accounts/test").unwrap();
        assert_eq!(route.path, "/v1/accounts/test");
        assert!(
            find("get", "/v1/accounts/").is_none(),
            "an empty id is no id"
        );
        assert!(find("get", "/v1/records/deals/%FF").is_none(), "not UTF-8");
        assert!(find("get", "/v1/nothing").is_none());
    }
}
