//! HTTP routes: the identity platform's two endpoints and Graph's mail API.
//!
//! | route | answer |
//! |---|---|
//! | `GET /{tenant}/oauth2/v2.0/authorize` | 302 to the redirect URI (or a form post), or an error page |
//! | `POST /{tenant}/oauth2/v2.0/token` | tokens, or the platform's error JSON |
//! | `GET /v1.0/me` | the signed-in user |
//! | `GET /v1.0/me/mailFolders[/{id}[/childFolders]]` | folders, pages of `$top` (10) |
//! | `GET /v1.0/me/mailFolders/{id}/messages/delta` | a page of a delta round |
//! | `GET\|POST /v1.0/me[/mailFolders/{id}]/messages` | a page of messages; create one from MIME |
//! | `GET\|PATCH\|DELETE /v1.0/me/messages/{id}`, `…/$value`, `POST …/move`, `POST …/permanentDelete` | one message |
//! | `POST /v1.0/me/sendMail` | send MIME |
//!
//! `/users/{id | userPrincipalName}` stands for `/me` when it names the
//! signed-in account, message routes may also be reached through
//! `/mailFolders/{id}/messages/{id}`, folders may be nested with
//! `/childFolders/{id}`, and functions and actions may be spelled with their
//! `microsoft.graph.` namespace.
//!
//! A Graph request is counted, then checked in this order: credentials
//! (401), the account (403), an injected failure, the mailbox's request
//! window and concurrency (429). It is in flight from then until its answer
//! has been written; only then is its body read and is it served.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{
    CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, PRAGMA, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use mailroom_fake_https::now_ms;
use mailroom_fake_https::oauth::{basic_credentials, bearer_token};
use mailroom_fake_https::request::{form_pairs, percent_decode, query_pairs};
use serde_json::{Value, json};

use crate::error::GraphError;
use crate::guid;
use crate::mailbox::{Arrival, DeltaQuery, FlagStatus, IdForm, Mailbox, canonical_property};
use crate::oauth::Authorization;
use crate::odata::{self, Params, Prefer, ReceivedFilter, ReceivedRange, format_error_date, param};
use crate::state::{Shared, State};
use crate::throttle::Refusal;

/// The largest request body served: Outlook's upload limit is 150 MB.
const MAX_BODY: usize = 150 * 1024 * 1024;
const DEFAULT_PAGE: usize = 10;
const MAX_PAGE: usize = 1000;
const JSON: &str = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8";

/// An answer's body, holding the request's place in its mailbox's
/// in-flight count until hyper has written it and lets it go.
pub(crate) struct Answer {
    body: Full<Bytes>,
    _slot: Option<Slot>,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request in flight for a mailbox; leaving when dropped.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    mailbox: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.lock().throttle.leave(&self.mailbox);
    }
}

/// What a handler answers, before the response is built.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Self {
        Reply {
            status,
            content_type: JSON,
            body: Bytes::from(value.to_string()),
            headers: Vec::new(),
        }
    }

    fn empty(status: u16) -> Self {
        Reply {
            status,
            content_type: "",
            body: Bytes::new(),
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: HeaderName, value: Option<HeaderValue>) -> Self {
        if let Some(value) = value {
            self.headers.push((name, value));
        }
        self
    }

    fn into_response(self, slot: Option<Slot>) -> Response<Answer> {
        let mut response = Response::new(Answer {
            body: Full::new(self.body),
            _slot: slot,
        });
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if !self.content_type.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        }
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

fn text(status: u16, content_type: &'static str, body: String) -> Reply {
    Reply {
        status,
        content_type,
        body: Bytes::from(body),
        headers: Vec::new(),
    }
}

/// Answers one request.
pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Answer> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if let Some(rest) = path.strip_prefix("/v1.0/") {
        return graph(shared, parts, rest, body).await;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let reply = match (&parts.method, segments.as_slice()) {
        (&Method::GET, [tenant, "oauth2", "v2.0", "authorize"]) => {
            authorize(&shared, &percent_decode(tenant), &query_pairs(&parts.uri))
        }
        (&Method::POST, [tenant, "oauth2", "v2.0", "token"]) => {
            let tenant = percent_decode(tenant);
            match Limited::new(body, 1024 * 1024).collect().await {
                Ok(collected) => token(&shared, &tenant, &parts.headers, &collected.to_bytes()),
                Err(_) => text(
                    413,
                    "text/plain; charset=utf-8",
                    "Request body too large\n".to_owned(),
                ),
            }
        }
        _ => text(404, "text/plain; charset=utf-8", "Not found\n".to_owned()),
    };
    reply.into_response(None)
}

// ----- the identity platform -----

fn authorize(shared: &Shared, tenant: &str, query: &Params) -> Reply {
    let answer = shared
        .lock()
        .identity
        .authorize(tenant, query, Instant::now());
    match answer {
        Authorization::Redirect(location) => match HeaderValue::from_str(&location) {
            Ok(value) => Reply::empty(302).header(LOCATION, Some(value)),
            Err(_) => text(
                400,
                "text/plain; charset=utf-8",
                "Invalid redirect_uri\n".to_owned(),
            ),
        },
        Authorization::FormPost(html) => text(200, "text/html; charset=utf-8", html),
        Authorization::Page(status, html) => text(status, "text/html; charset=utf-8", html),
    }
}

fn token(shared: &Shared, tenant: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
    let mut state = shared.lock();
    state.stats.token_requests += 1;
    let form = form_pairs(body).unwrap_or_default();
    let basic = basic_credentials(headers);
    let (status, body) = state.identity.token(tenant, &form, basic, Instant::now());
    Reply {
        content_type: "application/json; charset=utf-8",
        ..Reply::json(status, &body)
    }
    .header(
        CACHE_CONTROL,
        Some(HeaderValue::from_static("no-store, no-cache")),
    )
    .header(PRAGMA, Some(HeaderValue::from_static("no-cache")))
}

// ----- Graph -----

/// A Graph route and the ids it names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    Me,
    ListFolders,
    GetFolder(String),
    ChildFolders(String),
    ListMessages(Option<String>),
    CreateMessage(Option<String>),
    Delta(String),
    GetMessage(String),
    Value(String),
    UpdateMessage(String),
    DeleteMessage(String),
    MoveMessage(String),
    PermanentDelete(String),
    SendMail,
}

/// A parsed Graph path: the route, its key for [`crate::Stats::by_route`],
/// and the account a `/users/{id}` path names.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    route: Route,
    key: String,
    user: Option<String>,
}

/// Path segments, percent-decoded, with OData key syntax
/// (`mailFolders('id')`) split and the `microsoft.graph.` namespace dropped.
fn segments(rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    for segment in rest.split('/').filter(|s| !s.is_empty()) {
        let segment = percent_decode(segment);
        if let Some((name, key)) = segment.split_once("('")
            && let Some(key) = key.strip_suffix("')")
        {
            out.push(name.to_owned());
            out.push(key.to_owned());
            continue;
        }
        let segment = segment
            .strip_prefix("microsoft.graph.")
            .map(str::to_owned)
            .unwrap_or(segment);
        out.push(segment);
    }
    out
}

impl Target {
    fn parse(method: &Method, rest: &str) -> Result<Target, GraphError> {
        let segments = segments(rest);
        let mut rest: &[String] = &segments;
        let user = match rest {
            [me, tail @ ..] if me == "me" => {
                rest = tail;
                None
            }
            [users, id, tail @ ..] if users == "users" => {
                rest = tail;
                Some(id.clone())
            }
            [first, ..] => return Err(GraphError::unknown_segment(first)),
            [] => return Err(GraphError::unknown_segment("v1.0")),
        };
        let mut template = String::from("/me");
        let mut folder = None;
        if let [first, id, tail @ ..] = rest
            && first == "mailFolders"
        {
            template.push_str("/mailFolders/{id}");
            folder = Some(id.clone());
            rest = tail;
            while let [child, id, tail @ ..] = rest
                && child == "childFolders"
            {
                template.push_str("/childFolders/{id}");
                folder = Some(id.clone());
                rest = tail;
            }
        }
        let names: Vec<&str> = rest.iter().map(String::as_str).collect();
        let route = match (method, folder, names.as_slice()) {
            (&Method::GET, None, []) => Route::Me,
            (&Method::GET, None, ["mailFolders"]) => {
                template.push_str("/mailFolders");
                Route::ListFolders
            }
            (&Method::GET, Some(folder), []) => Route::GetFolder(folder),
            (&Method::GET, Some(folder), ["childFolders"]) => {
                template.push_str("/childFolders");
                Route::ChildFolders(folder)
            }
            (&Method::GET, folder, ["messages"]) => {
                template.push_str("/messages");
                Route::ListMessages(folder)
            }
            (&Method::POST, folder, ["messages"]) => {
                template.push_str("/messages");
                Route::CreateMessage(folder)
            }
            (&Method::GET, Some(folder), ["messages", "delta"]) => {
                template.push_str("/messages/delta");
                Route::Delta(folder)
            }
            (&Method::POST, None, ["sendMail"]) => {
                template.push_str("/sendMail");
                Route::SendMail
            }
            (method, _, ["messages", id, tail @ ..]) => {
                template.push_str("/messages/{id}");
                let id = (*id).to_owned();
                match (method, tail) {
                    (&Method::GET, []) => Route::GetMessage(id),
                    (&Method::PATCH, []) => Route::UpdateMessage(id),
                    (&Method::DELETE, []) => Route::DeleteMessage(id),
                    (&Method::GET, ["$value"]) => {
                        template.push_str("/$value");
                        Route::Value(id)
                    }
                    (&Method::POST, ["move"]) => {
                        template.push_str("/move");
                        Route::MoveMessage(id)
                    }
                    (&Method::POST, ["permanentDelete"]) => {
                        template.push_str("/permanentDelete");
                        Route::PermanentDelete(id)
                    }
                    (_, [segment, ..]) => return Err(GraphError::unknown_segment(segment)),
                    (_, []) => {
                        return Err(GraphError::new(
                            405,
                            "Request_BadRequest",
                            "The HTTP method is not allowed on this resource.",
                        ));
                    }
                }
            }
            (_, _, [segment, ..]) => return Err(GraphError::unknown_segment(segment)),
            (_, _, []) => {
                return Err(GraphError::new(
                    405,
                    "Request_BadRequest",
                    "The HTTP method is not allowed on this resource.",
                ));
            }
        };
        Ok(Target {
            route,
            key: format!("{method} {template}"),
            user,
        })
    }
}

/// The ids every Graph answer carries.
struct Ids {
    request_id: String,
    client_request_id: String,
}

impl Ids {
    fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::new();
        for (name, value) in [
            ("request-id", &self.request_id),
            ("client-request-id", &self.client_request_id),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.push((HeaderName::from_static(name), value));
            }
        }
        headers
    }
}

fn error_reply(error: &GraphError, ids: &Ids) -> Reply {
    let date = format_error_date(now_ms());
    let mut reply = Reply::json(
        error.status,
        &error.body(&ids.request_id, &ids.client_request_id, &date),
    );
    if error.status == 401 {
        reply = reply.header(
            WWW_AUTHENTICATE,
            Some(HeaderValue::from_static(
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
            )),
        );
    }
    reply = reply.header(RETRY_AFTER, error.retry_after.map(HeaderValue::from));
    reply.header(
        LOCATION,
        error
            .location
            .as_deref()
            .and_then(|location| HeaderValue::from_str(location).ok()),
    )
}

fn with_ids(mut reply: Reply, ids: &Ids) -> Reply {
    reply.headers.extend(ids.headers());
    reply
}

/// Counts, authenticates and admits a Graph request; then reads its body and
/// serves it.
async fn graph(shared: Arc<Shared>, parts: Parts, rest: &str, body: Incoming) -> Response<Answer> {
    let request_id = guid();
    let client_request_id = parts
        .headers
        .get("client-request-id")
        .and_then(|value| value.to_str().ok())
        .map_or_else(|| request_id.clone(), str::to_owned);
    let ids = Ids {
        request_id,
        client_request_id,
    };
    let prefer = Prefer::from_headers(&parts.headers);
    let target = Target::parse(&parts.method, rest);
    let bearer = bearer_token(&parts.headers);

    let admitted = admit(&shared, &parts.method, &target, bearer, prefer);
    let (upn, target) = match (admitted, target) {
        (Ok(upn), Ok(target)) => (upn, target),
        (Err(error), _) | (Ok(_), Err(error)) => {
            return with_ids(error_reply(&error, &ids), &ids).into_response(None);
        }
    };
    let slot = Slot {
        shared: shared.clone(),
        mailbox: upn.clone(),
    };
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return with_ids(error_reply(&GraphError::payload_too_large(), &ids), &ids)
                .into_response(Some(slot));
        }
    };
    let request = GraphRequest {
        query: query_pairs(&parts.uri),
        headers: &parts.headers,
        body: &body,
        prefer,
    };
    let reply = {
        let mut state = shared.lock();
        serve(&mut state, &upn, &target.route, &request)
    };
    let reply = reply.unwrap_or_else(|error| error_reply(&error, &ids));
    with_ids(reply, &ids).into_response(Some(slot))
}

/// The checks before a request is served: `Ok` with the account's
/// lowercased UPN once it counts as in flight.
fn admit(
    shared: &Shared,
    method: &Method,
    target: &Result<Target, GraphError>,
    bearer: Option<String>,
    prefer: Prefer,
) -> Result<String, GraphError> {
    let mut state = shared.lock();
    let stats = &mut state.stats;
    stats.requests += 1;
    let key = match target {
        Ok(target) => target.key.clone(),
        Err(_) => format!("{method} (unknown)"),
    };
    *stats.by_route.entry(key).or_default() += 1;
    if let Some(token) = &bearer {
        stats.bearer_tokens_seen.insert(token.clone());
    }
    if !prefer.immutable_ids {
        stats.without_immutable_prefer += 1;
    }

    let now = Instant::now();
    let upn = match bearer {
        None => Err(GraphError::unauthenticated("Access token is empty.")),
        Some(token) => state
            .identity
            .user_of(&token, now)
            .map(str::to_owned)
            .map_err(GraphError::unauthenticated),
    }?;
    let target = target.as_ref().map_err(Clone::clone)?;
    if let Some(user) = &target.user {
        let named = state
            .mailbox(&upn)
            .is_some_and(|mailbox| mailbox.is_named(user));
        if !named {
            return Err(GraphError::access_denied());
        }
    }
    if let Some((status, retry_after)) = state.failures.take() {
        if status == 429 {
            state.stats.throttled += 1;
        }
        return Err(GraphError::injected(status, retry_after));
    }
    match state.throttle.enter(&upn, now) {
        Ok(in_flight) => {
            state.stats.max_in_flight = state.stats.max_in_flight.max(in_flight);
            Ok(upn)
        }
        Err(refusal) => {
            state.stats.throttled += 1;
            Err(match refusal {
                Refusal::Rate(seconds) => GraphError::over_request_limit(seconds),
                Refusal::Concurrency => GraphError::over_concurrency_limit(),
            })
        }
    }
}

/// What a Graph route reads besides its path.
struct GraphRequest<'a> {
    query: Vec<(String, String)>,
    headers: &'a HeaderMap,
    body: &'a [u8],
    prefer: Prefer,
}

impl GraphRequest<'_> {
    fn form(&self) -> IdForm {
        if self.prefer.immutable_ids {
            IdForm::Immutable
        } else {
            IdForm::Regular
        }
    }

    /// `$select`, each name checked against the message type.
    fn select(&self) -> Result<Option<Vec<String>>, GraphError> {
        let Some(select) = odata::select(&self.query) else {
            return Ok(None);
        };
        for name in &select {
            canonical_property(name).ok_or_else(|| GraphError::unknown_property(name))?;
        }
        Ok(Some(select))
    }

    fn json_body(&self) -> Result<Value, GraphError> {
        serde_json::from_slice(self.body)
            .map_err(|e| GraphError::bad_request(format!("Invalid JSON in the request body: {e}")))
    }

    /// A MIME message sent as base64 text, as `sendMail` and message creation
    /// take it.
    fn mime(&self) -> Result<Vec<u8>, GraphError> {
        let content_type = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !content_type.starts_with("text/plain") {
            return Err(GraphError::new(
                415,
                "ErrorUnsupportedMediaType",
                "This fake takes messages in MIME format only: base64 with Content-Type: text/plain.",
            ));
        }
        let compact: Vec<u8> = self
            .body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let lenient =
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
        let raw = GeneralPurpose::new(&alphabet::STANDARD, lenient)
            .decode(&compact)
            .map_err(|_| GraphError::invalid_mime())?;
        if raw.is_empty() {
            return Err(GraphError::invalid_mime());
        }
        Ok(raw)
    }
}

/// `{base}/v1.0/me/...` with these query pairs.
fn link(base: &str, path: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return format!("{base}/v1.0{path}");
    }
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("{base}/v1.0{path}?{query}")
}

/// One page of a list by `$top` and `$skip`, with `@odata.nextLink` when
/// more follow.
fn page<T>(
    items: Vec<T>,
    request: &GraphRequest<'_>,
    base: &str,
    path: &str,
    render: impl Fn(T) -> Value,
) -> Result<Value, GraphError> {
    let top = odata::count_option(&request.query, "$top")?
        .unwrap_or(DEFAULT_PAGE)
        .clamp(1, MAX_PAGE);
    let skip = odata::count_option(&request.query, "$skip")?.unwrap_or(0);
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(skip).take(top).map(render).collect();
    let mut answer = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#Collection"),
        "value": value,
    });
    if param(&request.query, "$count").is_some_and(|c| c.eq_ignore_ascii_case("true")) {
        answer["@odata.count"] = json!(total);
    }
    if skip + top < total {
        let mut pairs: Vec<(String, String)> = request
            .query
            .iter()
            .filter(|(key, _)| {
                !key.eq_ignore_ascii_case("$skip") && !key.eq_ignore_ascii_case("$top")
            })
            .cloned()
            .collect();
        pairs.push(("$top".to_owned(), top.to_string()));
        pairs.push(("$skip".to_owned(), (skip + top).to_string()));
        answer["@odata.nextLink"] = json!(link(base, path, &pairs));
    }
    Ok(answer)
}

/// A folder with only the `$select`ed properties (and `id`), if any were.
fn select_folder(mut folder: Value, select: Option<&[String]>) -> Value {
    if let (Some(select), Some(object)) = (select, folder.as_object_mut()) {
        object.retain(|key, _| {
            key == "id" || select.iter().any(|name| name.eq_ignore_ascii_case(key))
        });
    }
    folder
}

fn flag_of(value: &Value) -> Result<FlagStatus, GraphError> {
    value
        .get("flagStatus")
        .and_then(Value::as_str)
        .and_then(FlagStatus::parse)
        .ok_or_else(|| GraphError::bad_request("Invalid value for flag.flagStatus."))
}

/// Serves a Graph route for the account `upn`.
fn serve(
    state: &mut State,
    upn: &str,
    route: &Route,
    request: &GraphRequest<'_>,
) -> Result<Reply, GraphError> {
    let base = state.base_url.clone();
    let mailbox: &mut Mailbox = state
        .try_mailbox_mut(upn)
        .ok_or_else(GraphError::item_not_found)?;
    let form = request.form();
    let now = now_ms();
    let reply = match route {
        Route::Me => Reply::json(200, &mailbox.profile()),
        Route::ListFolders | Route::ChildFolders(_) => {
            let (parent, path) = match route {
                Route::ChildFolders(folder) => {
                    let parent = mailbox.resolve_folder(folder)?;
                    (
                        parent,
                        format!("/me/mailFolders/{}/childFolders", mailbox.folder_id(parent)),
                    )
                }
                _ => (
                    mailbox.well_known_folder("msgfolderroot"),
                    "/me/mailFolders".to_owned(),
                ),
            };
            let include_hidden = param(&request.query, "includeHiddenFolders")
                .is_some_and(|value| value.eq_ignore_ascii_case("true"));
            let children = mailbox.child_folders(parent, include_hidden);
            let select = odata::select(&request.query);
            let mailbox = &*mailbox;
            Reply::json(
                200,
                &page(children, request, &base, &path, |number| {
                    select_folder(mailbox.folder_json(number), select.as_deref())
                })?,
            )
        }
        Route::GetFolder(folder) => {
            let number = mailbox.resolve_folder(folder)?;
            let select = odata::select(&request.query);
            Reply::json(
                200,
                &select_folder(mailbox.folder_json(number), select.as_deref()),
            )
        }
        Route::ListMessages(folder) => {
            let folder = folder
                .as_deref()
                .map(|folder| mailbox.resolve_folder(folder))
                .transpose()?;
            let path = match folder {
                Some(number) => format!("/me/mailFolders/{}/messages", mailbox.folder_id(number)),
                None => "/me/messages".to_owned(),
            };
            let select = request.select()?;
            let filter = param(&request.query, "$filter")
                .map(ReceivedRange::parse)
                .transpose()?;
            let ascending = match param(&request.query, "$orderby") {
                None => false,
                Some(order) => {
                    let words: Vec<&str> = order.split_whitespace().collect();
                    match words.as_slice() {
                        [property, rest @ ..]
                            if property.eq_ignore_ascii_case("receivedDateTime") =>
                        {
                            rest.first().is_none_or(|d| d.eq_ignore_ascii_case("asc"))
                        }
                        _ => {
                            return Err(GraphError::bad_request(format!(
                                "The $orderby expression '{order}' is not supported; only receivedDateTime is."
                            )));
                        }
                    }
                }
            };
            let mut numbers: Vec<u64> = mailbox
                .numbers_in(folder)
                .into_iter()
                .filter(|number| {
                    filter
                        .as_ref()
                        .is_none_or(|f| f.admits(mailbox.received_ms(*number)))
                })
                .collect();
            numbers.sort_by_key(|number| (mailbox.received_ms(*number), *number));
            if !ascending {
                numbers.reverse();
            }
            let mailbox = &*mailbox;
            Reply::json(
                200,
                &page(numbers, request, &base, &path, |number| {
                    mailbox.message_json(number, form, select.as_deref())
                })?,
            )
        }
        Route::CreateMessage(folder) => {
            let raw = request.mime()?;
            let folder = match folder {
                Some(folder) => mailbox.resolve_folder(folder)?,
                None => mailbox.well_known_folder("drafts"),
            };
            let number = mailbox.insert(
                folder,
                Arrival {
                    raw,
                    received_ms: now,
                    is_read: true,
                    is_draft: true,
                    now_ms: now,
                },
            );
            Reply::json(201, &mailbox.message_json(number, form, None))
        }
        Route::Delta(folder) => {
            let number = mailbox.resolve_folder(folder)?;
            let folder_id = mailbox.folder_id(number);
            let path = format!("/me/mailFolders/{folder_id}/messages/delta");
            let restart_url = format!("{base}/v1.0{path}");
            let token = param(&request.query, "$skiptoken")
                .or_else(|| param(&request.query, "$deltatoken"));
            let page_size = match request.prefer.max_page_size {
                Some(size) => size,
                None => odata::count_option(&request.query, "$top")?.unwrap_or(DEFAULT_PAGE),
            }
            .clamp(1, MAX_PAGE);
            let (filter, descending, select) = if token.is_some() {
                (None, false, None)
            } else {
                (
                    param(&request.query, "$filter")
                        .map(ReceivedFilter::parse)
                        .transpose()?,
                    odata::received_descending(&request.query)?,
                    request.select()?,
                )
            };
            let delta = mailbox.delta(
                number,
                &DeltaQuery {
                    token,
                    filter,
                    descending,
                    select,
                    page_size,
                    form,
                    restart_url: &restart_url,
                },
            )?;
            let mut answer = json!({
                "@odata.context": format!("{base}/v1.0/$metadata#Collection(message)"),
                "value": delta.value,
            });
            if let Some(skip) = delta.skip_token {
                answer["@odata.nextLink"] = json!(format!("{restart_url}?$skiptoken={skip}"));
            }
            if let Some(delta) = delta.delta_token {
                answer["@odata.deltaLink"] = json!(format!("{restart_url}?$deltatoken={delta}"));
            }
            Reply::json(200, &answer).header(
                HeaderName::from_static("preference-applied"),
                request
                    .prefer
                    .applied(request.prefer.max_page_size.map(|_| page_size)),
            )
        }
        Route::GetMessage(id) => {
            let number = mailbox.resolve_message(id)?;
            let select = request.select()?;
            Reply::json(200, &mailbox.message_json(number, form, select.as_deref()))
        }
        Route::Value(id) => {
            let number = mailbox.resolve_message(id)?;
            let raw = Bytes::copy_from_slice(mailbox.raw(number));
            state.stats.value_downloads += 1;
            Reply {
                status: 200,
                content_type: "message/rfc822",
                body: raw,
                headers: Vec::new(),
            }
        }
        Route::UpdateMessage(id) => {
            let number = mailbox.resolve_message(id)?;
            let body = request.json_body()?;
            let Some(fields) = body.as_object() else {
                return Err(GraphError::bad_request(
                    "The request body must be a JSON object.",
                ));
            };
            let (mut is_read, mut flag, mut categories) = (None, None, None);
            for (name, value) in fields {
                match name.as_str() {
                    "isRead" => {
                        is_read =
                            Some(value.as_bool().ok_or_else(|| {
                                GraphError::bad_request("Invalid value for isRead.")
                            })?);
                    }
                    "flag" => flag = Some(flag_of(value)?),
                    "categories" => {
                        let list = value
                            .as_array()
                            .and_then(|items| {
                                items
                                    .iter()
                                    .map(|item| item.as_str().map(str::to_owned))
                                    .collect::<Option<Vec<_>>>()
                            })
                            .ok_or_else(|| {
                                GraphError::bad_request("Invalid value for categories.")
                            })?;
                        categories = Some(list);
                    }
                    name if name.starts_with("@odata.") => {}
                    other => {
                        return Err(GraphError::bad_request(format!(
                            "The property '{other}' cannot be updated by this fake; it updates isRead, flag and categories."
                        )));
                    }
                }
            }
            mailbox.update(number, is_read, flag, categories, now);
            Reply::json(200, &mailbox.message_json(number, form, None))
        }
        Route::DeleteMessage(id) => {
            let number = mailbox.resolve_message(id)?;
            let deletions = mailbox.well_known_folder("recoverableitemsdeletions");
            mailbox.move_to(number, deletions, now);
            Reply::empty(204)
        }
        Route::MoveMessage(id) => {
            let number = mailbox.resolve_message(id)?;
            let body = request.json_body()?;
            let destination = body
                .get("destinationId")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GraphError::bad_request("The destinationId parameter is required.")
                })?;
            let folder = mailbox.resolve_folder(destination)?;
            mailbox.move_to(number, folder, now);
            Reply::json(201, &mailbox.message_json(number, form, None))
        }
        Route::PermanentDelete(id) => {
            let number = mailbox.resolve_message(id)?;
            mailbox.purge(number);
            Reply::empty(204)
        }
        Route::SendMail => {
            let raw = request.mime()?;
            mailbox.send(raw, now);
            Reply::empty(202)
        }
    };
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, path: &str) -> Result<(Route, String, Option<String>), GraphError> {
        Target::parse(&method, path).map(|t| (t.route, t.key, t.user))
    }

    #[test]
    fn routes_and_their_keys() {
        assert_eq!(
            route(Method::GET, "me"),
            Ok((Route::Me, "GET /me".into(), None))
        );
        assert_eq!(
            route(Method::GET, "me/mailFolders/inbox/messages/delta"),
            Ok((
                Route::Delta("inbox".into()),
                "GET /me/mailFolders/{id}/messages/delta".into(),
                None
            ))
        );
        assert_eq!(
            route(
                Method::GET,
                "users/ann%40contoso.test/mailFolders('AQMk')/childFolders"
            ),
            Ok((
                Route::ChildFolders("AQMk".into()),
                "GET /me/mailFolders/{id}/childFolders".into(),
                Some("ann@contoso.test".into())
            ))
        );
        assert_eq!(
            route(
                Method::GET,
                "me/mailFolders/a/childFolders/b/messages/microsoft.graph.delta"
            )
            .unwrap()
            .0,
            Route::Delta("b".into())
        );
        assert_eq!(
            route(Method::GET, "me/messages/AAMk=/$value").unwrap().1,
            "GET /me/messages/{id}/$value"
        );
        assert_eq!(
            route(Method::POST, "me/mailFolders/inbox/messages/x/move"),
            Ok((
                Route::MoveMessage("x".into()),
                "POST /me/mailFolders/{id}/messages/{id}/move".into(),
                None
            ))
        );
        assert_eq!(
            route(Method::POST, "me/sendMail").unwrap().0,
            Route::SendMail
        );
        assert_eq!(
            route(
                Method::POST,
                "me/messages/x/microsoft.graph.permanentDelete"
            )
            .unwrap()
            .0,
            Route::PermanentDelete("x".into())
        );
        assert_eq!(route(Method::GET, "me/calendars").unwrap_err().status, 400);
        assert_eq!(route(Method::PUT, "me/messages/x").unwrap_err().status, 405);
        assert_eq!(route(Method::GET, "sites").unwrap_err().status, 400);
    }
}
