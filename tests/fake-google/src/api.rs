//! HTTP routes: the OAuth endpoints and the Gmail API v1 methods.
//!
//! | route | answer |
//! |---|---|
//! | `GET /o/oauth2/v2/auth` | 302 to the redirect URI, or a 400 text page |
//! | `POST /token` | tokens, or `{"error","error_description"}` |
//! | `POST /revoke` | 200, or 400 `invalid_token` |
//! | `/gmail/v1/users/{userId}/…` | the Gmail API methods |
//! | `/upload/gmail/v1/users/{userId}/messages[/send]` | media and multipart uploads |
//!
//! A Gmail call is counted, then checked in Google's order: credentials (401),
//! the user (403), an injected failure, the per-user quota (429); only then is
//! it served and its units counted.

use std::time::Instant;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use mailroom_fake_https::now_ms;
use mailroom_fake_https::oauth::{basic_credentials, bearer_token};
use mailroom_fake_https::request::{form_pairs, param, percent_decode, query_pairs};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::gmail::{Format, HistoryParams, HistoryType, ListParams, Mailbox};
use crate::oauth::Authorization;
use crate::query::rfc3339;
use crate::quota;
use crate::state::{Shared, State};

/// The largest request body served.
const MAX_BODY: usize = 64 * 1024 * 1024;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

type Reply = Response<Full<Bytes>>;

/// Answers one request.
pub(crate) async fn handle(shared: &Shared, request: Request<Incoming>) -> Reply {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return error_reply(&ApiError::payload_too_large()),
    };
    let query = query_pairs(&parts.uri);
    let path = parts.uri.path();
    let method = &parts.method;

    if *method == Method::GET && matches!(path, "/o/oauth2/v2/auth" | "/o/oauth2/auth") {
        return authorize(shared, &query);
    }
    if *method == Method::POST && matches!(path, "/token" | "/o/oauth2/token") {
        return token(shared, &parts.headers, &body);
    }
    if *method == Method::POST && matches!(path, "/revoke" | "/o/oauth2/revoke") {
        return revoke(shared, &query, &body);
    }
    if let Some(rest) = path.strip_prefix("/gmail/v1/users/") {
        return gmail(shared, &parts, rest, &query, body, false);
    }
    if let Some(rest) = path.strip_prefix("/upload/gmail/v1/users/") {
        return gmail(shared, &parts, rest, &query, body, true);
    }
    error_reply(&ApiError::not_found())
}

// ----- replies -----

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn json_reply(status: u16, body: &Value) -> Reply {
    reply(status, "application/json; charset=UTF-8", body.to_string())
}

fn error_reply(error: &ApiError) -> Reply {
    let mut response = json_reply(error.status, &error.body());
    let headers = response.headers_mut();
    if error.status == 401 {
        headers.insert(
            WWW_AUTHENTICATE,
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\""
                .parse()
                .expect("a valid header value"),
        );
    }
    if let Some(seconds) = error.retry_after {
        headers.insert(RETRY_AFTER, seconds.into());
    }
    response
}

// ----- OAuth -----

fn authorize(shared: &Shared, query: &[(String, String)]) -> Reply {
    let mut state = shared.lock();
    state.stats.oauth_requests += 1;
    match state.authorize(query, Instant::now()) {
        Authorization::Redirect(location) => {
            let mut response = reply(302, "text/html; charset=UTF-8", "");
            match location.parse() {
                Ok(value) => {
                    response.headers_mut().insert(LOCATION, value);
                    response
                }
                Err(_) => reply(
                    400,
                    "text/plain; charset=UTF-8",
                    "Error 400: invalid_request\nInvalid redirect_uri\n",
                ),
            }
        }
        Authorization::Refused(page) => reply(400, "text/plain; charset=UTF-8", page),
    }
}

fn token(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Reply {
    let mut state = shared.lock();
    state.stats.oauth_requests += 1;
    let Some(form) = form_pairs(body) else {
        let body =
            json!({ "error": "invalid_request", "error_description": "Malformed form body." });
        return json_reply(400, &body);
    };
    let basic = basic_credentials(headers);
    let (status, body) = state.oauth.token(&form, basic, Instant::now());
    let mut response = json_reply(status, &body);
    response.headers_mut().insert(
        "cache-control",
        "no-cache, no-store, max-age=0, must-revalidate"
            .parse()
            .expect("a valid header value"),
    );
    response
}

fn revoke(shared: &Shared, query: &[(String, String)], body: &[u8]) -> Reply {
    let mut state = shared.lock();
    state.stats.oauth_requests += 1;
    let form = form_pairs(body).unwrap_or_default();
    let token = param(&form, "token").or_else(|| param(query, "token"));
    if token.is_some_and(|token| state.oauth.revoke(token)) {
        json_reply(200, &json!({}))
    } else {
        json_reply(
            400,
            &json!({ "error": "invalid_token", "error_description": "Token expired or revoked" }),
        )
    }
}

// ----- Gmail -----

/// A Gmail API method and the message id it names, if any.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    GetProfile,
    LabelsList,
    LabelsGet(String),
    LabelsCreate,
    MessagesList,
    MessagesGet(String),
    MessagesInsert,
    MessagesSend,
    MessagesModify(String),
    MessagesTrash(String),
    MessagesUntrash(String),
    MessagesDelete(String),
    MessagesBatchModify,
    MessagesBatchDelete,
    HistoryList,
}

impl Route {
    fn find(method: &Method, segments: &[String], upload: bool) -> Option<Route> {
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        if upload {
            return match (method, segments.as_slice()) {
                (&Method::POST, ["messages"]) => Some(Route::MessagesInsert),
                (&Method::POST, ["messages", "send"]) => Some(Route::MessagesSend),
                _ => None,
            };
        }
        let id = |id: &str| id.to_owned();
        Some(match (method, segments.as_slice()) {
            (&Method::GET, ["profile"]) => Route::GetProfile,
            (&Method::GET, ["labels"]) => Route::LabelsList,
            (&Method::POST, ["labels"]) => Route::LabelsCreate,
            (&Method::GET, ["labels", label]) => Route::LabelsGet(id(label)),
            (&Method::GET, ["messages"]) => Route::MessagesList,
            (&Method::POST, ["messages"]) => Route::MessagesInsert,
            (&Method::POST, ["messages", "send"]) => Route::MessagesSend,
            (&Method::POST, ["messages", "batchModify"]) => Route::MessagesBatchModify,
            (&Method::POST, ["messages", "batchDelete"]) => Route::MessagesBatchDelete,
            (&Method::GET, ["messages", message]) => Route::MessagesGet(id(message)),
            (&Method::DELETE, ["messages", message]) => Route::MessagesDelete(id(message)),
            (&Method::POST, ["messages", message, "modify"]) => Route::MessagesModify(id(message)),
            (&Method::POST, ["messages", message, "trash"]) => Route::MessagesTrash(id(message)),
            (&Method::POST, ["messages", message, "untrash"]) => {
                Route::MessagesUntrash(id(message))
            }
            (&Method::GET, ["history"]) => Route::HistoryList,
            _ => return None,
        })
    }

    /// The method's name in Google's reference and usage-limits page.
    fn name(&self) -> &'static str {
        match self {
            Route::GetProfile => "getProfile",
            Route::LabelsList => "labels.list",
            Route::LabelsGet(_) => "labels.get",
            Route::LabelsCreate => "labels.create",
            Route::MessagesList => "messages.list",
            Route::MessagesGet(_) => "messages.get",
            Route::MessagesInsert => "messages.insert",
            Route::MessagesSend => "messages.send",
            Route::MessagesModify(_) => "messages.modify",
            Route::MessagesTrash(_) => "messages.trash",
            Route::MessagesUntrash(_) => "messages.untrash",
            Route::MessagesDelete(_) => "messages.delete",
            Route::MessagesBatchModify => "messages.batchModify",
            Route::MessagesBatchDelete => "messages.batchDelete",
            Route::HistoryList => "history.list",
        }
    }
}

fn gmail(
    shared: &Shared,
    parts: &Parts,
    rest: &str,
    query: &[(String, String)],
    body: Bytes,
    upload: bool,
) -> Reply {
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    let Some((user_id, segments)) = segments.split_first() else {
        return error_reply(&ApiError::not_found());
    };
    let mut state = shared.lock();
    state.stats.requests += 1;
    let bearer = bearer_token(&parts.headers);
    if let Some(token) = &bearer
        && !state.stats.bearer_tokens_seen.contains(token)
    {
        state.stats.bearer_tokens_seen.push(token.clone());
    }
    let Some(route) = Route::find(&parts.method, segments, upload) else {
        return error_reply(&ApiError::not_found());
    };
    let name = route.name();
    *state.stats.by_method.entry(name.to_owned()).or_default() += 1;

    let now = Instant::now();
    let Some(user) = bearer
        .as_deref()
        .and_then(|token| state.oauth.user_of(token, now))
        .map(str::to_owned)
    else {
        return error_reply(&ApiError::unauthenticated());
    };
    if user_id != "me" && !user_id.eq_ignore_ascii_case(&user) {
        return error_reply(&ApiError::forbidden(format!(
            "Delegation denied for {user}"
        )));
    }
    if let Some((status, retry_after)) = state.failures.take() {
        let error = ApiError::injected(status, retry_after);
        if error.is_rate_limit() {
            state.stats.rate_limited += 1;
        }
        return error_reply(&error);
    }
    let units = quota::cost(name);
    if let Err(wait) = state.quota.try_spend(&user, units, now) {
        state.stats.rate_limited += 1;
        let retry_at = now_ms() + i64::try_from(wait.as_millis()).unwrap_or(1000);
        return error_reply(&ApiError::user_rate_limit(&rfc3339(retry_at)));
    }
    state.stats.units += u64::from(units);

    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let request = GmailRequest {
        query,
        body: &body,
        content_type,
        upload,
    };
    match serve(&mut state, &user, &route, &request) {
        Ok(Some(value)) => json_reply(200, &value),
        Ok(None) => reply(204, "application/json; charset=UTF-8", Bytes::new()),
        Err(error) => error_reply(&error),
    }
}

/// What a Gmail method reads besides its route.
struct GmailRequest<'a> {
    query: &'a [(String, String)],
    body: &'a [u8],
    content_type: &'a str,
    upload: bool,
}

impl GmailRequest<'_> {
    fn all(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    fn one(&self, name: &str) -> Option<&str> {
        param(self.query, name)
    }

    fn page_size(&self) -> Result<usize, ApiError> {
        match self.one("maxResults") {
            None => Ok(DEFAULT_PAGE),
            Some(value) => match value.parse::<usize>() {
                Ok(0) => Ok(DEFAULT_PAGE),
                Ok(n) => Ok(n.min(MAX_PAGE)),
                Err(_) => Err(ApiError::invalid_argument(format!(
                    "Invalid value for maxResults: {value}"
                ))),
            },
        }
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.one(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::invalid_argument(format!(
                "Invalid value for {name}: {other}"
            ))),
        }
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(self.body)
            .map_err(|e| ApiError::invalid_argument(format!("Invalid JSON payload received. {e}")))
    }

    /// The message and metadata of `send` and `insert`: base64url `raw` in a
    /// JSON body, or the message itself through `/upload` (`uploadType=media`
    /// or `multipart`, whose first part is the JSON metadata).
    fn message(&self) -> Result<(Vec<u8>, Value), ApiError> {
        if self.upload {
            return match self.one("uploadType") {
                Some("media") => Ok((self.body.to_vec(), json!({}))),
                Some("multipart") => multipart_related(self.content_type, self.body)
                    .ok_or_else(|| ApiError::invalid_argument("Malformed multipart body.")),
                other => Err(ApiError::invalid_argument(format!(
                    "Unsupported uploadType: {}",
                    other.unwrap_or("(none)")
                ))),
            };
        }
        let metadata = self.json_body()?;
        let raw = metadata["raw"].as_str().ok_or_else(|| {
            ApiError::invalid_argument("'raw' RFC822 payload message string or uploading message via /upload/* URL required")
        })?;
        let raw = decode_raw(raw)
            .ok_or_else(|| ApiError::invalid_argument("Invalid value for ByteString: raw"))?;
        Ok((raw, metadata))
    }
}

/// Strings of a JSON array field; absent is empty.
fn strings(value: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    match &value[field] {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::invalid_argument(format!("Invalid value for {field}")))
            })
            .collect(),
        _ => Err(ApiError::invalid_argument(format!(
            "Invalid value for {field}"
        ))),
    }
}

/// base64url, padded or not; standard base64 is accepted as well.
fn decode_raw(encoded: &str) -> Option<Vec<u8>> {
    let lenient =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let trimmed = encoded.trim();
    GeneralPurpose::new(&alphabet::URL_SAFE, lenient)
        .decode(trimmed)
        .or_else(|_| GeneralPurpose::new(&alphabet::STANDARD, lenient).decode(trimmed))
        .ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A `multipart/related` upload: the JSON metadata of the first part and the
/// message of the second.
fn multipart_related(content_type: &str, body: &[u8]) -> Option<(Vec<u8>, Value)> {
    let boundary = content_type.split(';').skip(1).find_map(|attribute| {
        let (key, value) = attribute.trim().split_once('=')?;
        key.eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })?;
    let delimiter = format!("--{boundary}").into_bytes();
    let mut rest = &body[find(body, &delimiter)? + delimiter.len()..];
    let mut contents = Vec::new();
    while !rest.starts_with(b"--") {
        let line_end = find(rest, b"\n")?;
        rest = &rest[line_end + 1..];
        let end = find(rest, &delimiter)?;
        let part = &rest[..end];
        let part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))
            .unwrap_or(part);
        let content = match find(part, b"\r\n\r\n") {
            Some(at) => &part[at + 4..],
            None => &part[find(part, b"\n\n")? + 2..],
        };
        contents.push(content);
        rest = &rest[end + delimiter.len()..];
    }
    let [metadata, message] = contents.as_slice() else {
        return None;
    };
    let metadata = if metadata.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(metadata).ok()?
    };
    Some((message.to_vec(), metadata))
}

/// Serves a Gmail method for `user`; `None` is a 204 with no body.
fn serve(
    state: &mut State,
    user: &str,
    route: &Route,
    request: &GmailRequest<'_>,
) -> Result<Option<Value>, ApiError> {
    let mailbox: &mut Mailbox = state
        .try_mailbox_mut(user)
        .ok_or_else(ApiError::not_found)?;
    let value = match route {
        Route::GetProfile => mailbox.profile(),
        Route::LabelsList => mailbox.labels_json(),
        Route::LabelsGet(id) => mailbox.label_json(id)?,
        Route::LabelsCreate => {
            let body = request.json_body()?;
            let name = body["name"]
                .as_str()
                .ok_or_else(|| ApiError::invalid_argument("Invalid label name"))?;
            mailbox.create_label(name)?
        }
        Route::MessagesList => mailbox.list(&ListParams {
            label_ids: request.all("labelIds"),
            q: request.one("q").map(str::to_owned),
            max_results: request.page_size()?,
            page_token: request.one("pageToken").map(str::to_owned),
            include_spam_trash: request.flag("includeSpamTrash")?,
        })?,
        Route::MessagesGet(id) => {
            let format = match request.one("format") {
                None => Format::Full,
                Some(value) => Format::parse(value).ok_or_else(|| {
                    ApiError::invalid_argument(format!("Invalid value for format: {value}"))
                })?,
            };
            let raw = matches!(format, Format::Raw);
            let value = mailbox.get(id, format, &request.all("metadataHeaders"))?;
            if raw {
                state.stats.raw_downloads += 1;
            }
            value
        }
        Route::MessagesInsert => {
            let (raw, metadata) = request.message()?;
            let date_header = match request.one("internalDateSource") {
                None | Some("receivedTime") => false,
                Some("dateHeader") => true,
                Some(other) => {
                    return Err(ApiError::invalid_argument(format!(
                        "Invalid value for internalDateSource: {other}"
                    )));
                }
            };
            let labels = strings(&metadata, "labelIds")?;
            let thread = metadata["threadId"].as_str();
            mailbox.api_insert(raw, labels, thread, now_ms(), date_header)?
        }
        Route::MessagesSend => {
            let (raw, metadata) = request.message()?;
            mailbox.send(raw, metadata["threadId"].as_str(), now_ms())?
        }
        Route::MessagesModify(id) => {
            let body = request.json_body()?;
            mailbox.modify(
                id,
                &strings(&body, "addLabelIds")?,
                &strings(&body, "removeLabelIds")?,
            )?
        }
        Route::MessagesTrash(id) => mailbox.trash(id)?,
        Route::MessagesUntrash(id) => mailbox.untrash(id)?,
        Route::MessagesDelete(id) => {
            mailbox.delete(id)?;
            return Ok(None);
        }
        Route::MessagesBatchModify => {
            let body = request.json_body()?;
            let (add, remove) = (
                strings(&body, "addLabelIds")?,
                strings(&body, "removeLabelIds")?,
            );
            for id in strings(&body, "ids")? {
                // As in Gmail, ids that are gone are skipped.
                match mailbox.modify(&id, &add, &remove) {
                    Ok(_) => {}
                    Err(error) if error.status == 404 => {}
                    Err(error) => return Err(error),
                }
            }
            return Ok(None);
        }
        Route::MessagesBatchDelete => {
            for id in strings(&request.json_body()?, "ids")? {
                let _ = mailbox.delete(&id);
            }
            return Ok(None);
        }
        Route::HistoryList => {
            let mut history_types = Vec::new();
            for value in request.all("historyTypes") {
                history_types.push(HistoryType::parse(&value).ok_or_else(|| {
                    ApiError::invalid_argument(format!("Invalid value for historyTypes: {value}"))
                })?);
            }
            mailbox.history(&HistoryParams {
                start_history_id: request.one("startHistoryId").map(str::to_owned),
                max_results: request.page_size()?,
                page_token: request.one("pageToken").map(str::to_owned),
                label_id: request.one("labelId").map(str::to_owned),
                history_types,
            })?
        }
    };
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(path: &str) -> Vec<String> {
        path.split('/').map(percent_decode).collect()
    }

    #[test]
    fn routes_match_the_reference() {
        let get = |path| Route::find(&Method::GET, &segments(path), false);
        let post = |path| Route::find(&Method::POST, &segments(path), false);
        assert_eq!(get("profile"), Some(Route::GetProfile));
        assert_eq!(
            get("messages/18f0000000000001"),
            Some(Route::MessagesGet("18f0000000000001".into()))
        );
        assert_eq!(
            post("messages/abc/modify"),
            Some(Route::MessagesModify("abc".into()))
        );
        assert_eq!(post("messages/send"), Some(Route::MessagesSend));
        assert_eq!(get("history"), Some(Route::HistoryList));
        assert_eq!(post("profile"), None);
        assert_eq!(get("threads"), None);
        assert_eq!(
            Route::find(&Method::POST, &segments("messages/send"), true),
            Some(Route::MessagesSend)
        );
        assert_eq!(Route::find(&Method::GET, &segments("profile"), true), None);
    }

    #[test]
    fn raw_decodes_padded_and_unpadded() {
        assert_eq!(decode_raw("aGk_Pz4-").unwrap(), b"hi??>>");
        assert_eq!(decode_raw("aGk").unwrap(), b"hi");
        assert_eq!(decode_raw("aGk=").unwrap(), b"hi");
        assert!(decode_raw("!!").is_none());
    }

    #[test]
    fn multipart_uploads_split_metadata_and_message() {
        let body = b"--xyz\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{\"threadId\":\"t1\"}\r\n\
            --xyz\r\nContent-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\nbody\r\n--xyz--\r\n";
        let (message, metadata) =
            multipart_related("multipart/related; boundary=\"xyz\"", body).unwrap();
        assert_eq!(metadata["threadId"], "t1");
        assert_eq!(message, b"Subject: hi\r\n\r\nbody");
        assert!(multipart_related("multipart/related", body).is_none());
    }
}
