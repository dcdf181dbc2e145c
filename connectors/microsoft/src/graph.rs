//! The Microsoft Graph v1.0 calls the connector makes, and the JSON they exchange.
//!
//! Follows the Graph reference: `GET /me` (user), `mailFolders` and `childFolders` (list
//! mail folders, `includeHiddenFolders`), a folder by its well-known name, `messages/delta`
//! ("Get incremental changes to messages in a folder"), a message's MIME content
//! (`/messages/{id}/$value`), `PATCH /messages/{id}` (`isRead`, `flag`), `move`,
//! `permanentDelete`, a message created in MIME format in a folder, and `sendMail` in MIME
//! format (base64 of the message, `Content-Type: text/plain`). Every call asks for immutable
//! ids (`Prefer: IdType="ImmutableId"`, "Obtain immutable identifiers for Outlook
//! resources"), so a message keeps its id when it moves. OData collections come in pages
//! linked by `@odata.nextLink`, which is followed as given. Throttling follows "Microsoft
//! Graph throttling guidance" and the Outlook service limits: 10,000 requests per 10 minutes
//! and 4 concurrent requests per mailbox; 429 and 503 carry `Retry-After`.

use crate::error::{ApiError, from_status, protocol};
use crate::mailroom::connector0_1_0::types::Error;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mailroom_wasi_http::pace::classify_status;
use mailroom_wasi_http::url::{Base, encode};
use mailroom_wasi_http::{Call, Class, Flow, Http, Method, Rate, Reply, Service};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Every call's path starts here, after the base URL's own path.
const ME: &str = "/v1.0/me";

/// The message properties a sync reads.
pub const SELECT: &str = "id,receivedDateTime,isRead,isDraft,flag,parentFolderId";

/// The largest request body Graph takes (4 MB): a message sent in MIME form travels in one,
/// base64-encoded ("user: sendMail", "Send Outlook messages in MIME format").
const MAX_REQUEST_BODY: usize = 4 << 20;

/// Folders asked for in one page of a listing.
const FOLDER_PAGE: u32 = 100;

/// The Outlook limits of one mailbox, for the shared client.
fn service() -> Service {
    Service {
        name: "Microsoft Graph",
        in_flight: 4,
        rate: Rate {
            units: 10_000,
            per_secs: 600,
        },
        classify,
        headers: vec![("prefer".into(), r#"IdType="ImmutableId""#.into())],
    }
}

/// 429 and 503 both mean "slow down" to Graph ("throttling guidance").
pub fn classify(status: u16, _body: &[u8]) -> Class {
    match status {
        503 => Class::RateLimited,
        _ => classify_status(status),
    }
}

/// A mail folder as Graph lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    #[serde(default)]
    pub child_folder_count: u32,
    #[serde(default)]
    pub is_hidden: bool,
}

#[derive(Debug, Deserialize)]
struct Collection<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// A message as a delta page names it: changed or new (all fields), or removed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub id: String,
    #[serde(rename = "@removed")]
    pub removed: Option<serde_json::Value>,
    pub received_date_time: Option<String>,
    #[serde(default)]
    pub is_read: bool,
    #[serde(default)]
    pub is_draft: bool,
    pub flag: Option<Flag>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    pub flag_status: Option<String>,
}

impl Entry {
    pub fn flagged(&self) -> bool {
        self.flag
            .as_ref()
            .and_then(|f| f.flag_status.as_deref())
            .is_some_and(|s| s.eq_ignore_ascii_case("flagged"))
    }
}

/// One page of a delta round.
#[derive(Debug, Deserialize)]
pub struct DeltaPage {
    pub value: Vec<Entry>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

/// What a delta call came to.
pub enum Delta {
    Page(DeltaPage),
    /// Graph no longer knows the round's state (410 `syncStateNotFound`): sync again.
    Expired,
}

/// A change to one message, or the message is not there any more.
pub enum Outcome<T> {
    Done(T),
    Gone,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

pub struct Graph {
    /// The client the calls go through, several at once when asked ([`Http::run`]).
    pub http: Http<Error>,
}

impl Graph {
    pub fn new(base: Base) -> Self {
        Self {
            http: Http::new(base, service()),
        }
    }

    fn call(method: Method, path: String, body: Option<Vec<u8>>) -> Call {
        Call {
            method,
            path,
            headers: Vec::new(),
            body,
            content_type: None,
            cost: 1,
            idempotent: true,
        }
    }

    fn get(path: String) -> Call {
        Self::call(Method::Get, format!("{ME}{path}"), None)
    }

    fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        let reply = self.http.one(call)?;
        success(&reply)?;
        parse(&reply.body)
    }

    /// Reads the signed-in user (a connection test).
    pub fn me(&self) -> Result<(), Error> {
        self.json::<serde::de::IgnoredAny>(Self::get(String::new()))
            .map(|_| ())
    }

    /// Every mail folder of the mailbox, hidden ones included, parents before children.
    pub fn folders(&self) -> Result<Vec<MailFolder>, Error> {
        let mut all = self.collection(Self::get(format!(
            "/mailFolders?includeHiddenFolders=true&$top={FOLDER_PAGE}"
        )))?;
        let mut level: Vec<String> = parents(&all);
        // Each level of children, its folders' listings several at once.
        while !level.is_empty() {
            let calls = level
                .iter()
                .map(|id| {
                    Self::get(format!(
                        "/mailFolders/{}/childFolders?includeHiddenFolders=true&$top={FOLDER_PAGE}",
                        encode(id)
                    ))
                })
                .collect();
            let mut found = Vec::new();
            self.http.run(calls, |_, reply| {
                let reply = reply?;
                success(&reply)?;
                let page: Collection<MailFolder> = parse(&reply.body)?;
                found.extend(page.value);
                if let Some(link) = page.next_link {
                    found.extend(self.collection(self.link(&link)?)?);
                }
                Ok(Flow::Continue)
            })?;
            level = parents(&found);
            all.extend(found);
        }
        Ok(all)
    }

    /// A whole OData collection, page after page.
    fn collection<T: DeserializeOwned>(&self, first: Call) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        let mut call = first;
        loop {
            let page: Collection<T> = self.json(call)?;
            out.extend(page.value);
            match page.next_link {
                Some(link) => call = self.link(&link)?,
                None => return Ok(out),
            }
        }
    }

    /// A GET of a link Graph handed out, as given.
    fn link(&self, link: &str) -> Result<Call, Error> {
        let path = self.http.base().own_link(link).map_err(protocol)?;
        Ok(Self::call(Method::Get, path, None))
    }

    /// The ids of the folders with these well-known names (`inbox`, `sentitems`, …); none
    /// for a name the mailbox does not have.
    pub fn well_known(&self, names: &[&str]) -> Result<Vec<Option<String>>, Error> {
        let calls = names
            .iter()
            .map(|name| Self::get(format!("/mailFolders/{name}?$select=id")))
            .collect();
        let mut ids = Vec::with_capacity(names.len());
        self.http.run(calls, |_, reply| {
            let reply = reply?;
            ids.push(if reply.status == 404 {
                None
            } else {
                success(&reply)?;
                Some(parse::<Created>(&reply.body)?.id)
            });
            Ok(Flow::Continue)
        })?;
        Ok(ids)
    }

    /// The first call of a folder's delta round: its messages received since `since_ms`
    /// (milliseconds since the epoch), newest first.
    pub fn first_delta(folder_id: &str, since_ms: i64) -> String {
        let since = crate::time::format_ms(since_ms);
        format!(
            "{ME}/mailFolders/{}/messages/delta?$select={SELECT}&$filter={}&$orderby={}",
            encode(folder_id),
            encode(&format!("receivedDateTime ge {since}")),
            encode("receivedDateTime desc"),
        )
    }

    /// How many messages of the folder were received from `since_ms` until before
    /// `until_ms`: the first round's filter, bounded, counted by Graph (`$count`) in one call
    /// that lists a single id.
    pub fn count_between(
        &self,
        folder_id: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<u64, Error> {
        #[derive(serde::Deserialize)]
        struct Counted {
            #[serde(rename = "@odata.count")]
            count: Option<u64>,
        }
        let filter = format!(
            "receivedDateTime ge {} and receivedDateTime lt {}",
            crate::time::format_ms(since_ms),
            crate::time::format_ms(until_ms)
        );
        let counted: Counted = self.json(Self::get(format!(
            "/mailFolders/{}/messages?$count=true&$top=1&$select=id&$filter={}",
            encode(folder_id),
            encode(&filter),
        )))?;
        counted
            .count
            .ok_or_else(|| protocol("Microsoft Graph answered a count without @odata.count"))
    }

    /// One page of a delta round: `path` is [`Graph::first_delta`] or a link of the round,
    /// as [`Graph::link_path`] took it.
    pub fn delta(&self, path: &str, page_size: u32) -> Result<Delta, Error> {
        let mut call = Self::call(Method::Get, path.to_owned(), None);
        call.headers
            .push(("prefer".into(), format!("odata.maxpagesize={page_size}")));
        let reply = self.http.one(call)?;
        if reply.status == 410 {
            return Ok(Delta::Expired);
        }
        success(&reply)?;
        Ok(Delta::Page(parse(&reply.body)?))
    }

    /// The path of a link Graph handed out, to keep in a folder's state.
    pub fn link_path(&self, link: &str) -> Result<String, Error> {
        self.http.base().own_link(link).map_err(protocol)
    }

    /// The call that fetches a message's MIME content.
    pub fn value_call(id: &str) -> Call {
        Self::get(format!("/messages/{}/$value", encode(id)))
    }

    /// `PATCH` of a message's properties.
    pub fn update(&self, id: &str, changes: &serde_json::Value) -> Result<Outcome<()>, Error> {
        let body = serde_json::to_vec(changes).map_err(|e| protocol(e.to_string()))?;
        let call = Self::call(
            Method::Patch,
            format!("{ME}/messages/{}", encode(id)),
            Some(body),
        );
        self.change(call).map(|o| o.map(|_| ()))
    }

    /// Moves a message; its id in the new folder.
    pub fn move_to(&self, id: &str, destination: &str) -> Result<Outcome<String>, Error> {
        let body = serde_json::json!({ "destinationId": destination }).to_string();
        let mut call = Self::call(
            Method::Post,
            format!("{ME}/messages/{}/move", encode(id)),
            Some(body.into_bytes()),
        );
        call.idempotent = false;
        self.change(call)
    }

    /// Deletes a message for good.
    pub fn permanent_delete(&self, id: &str) -> Result<Outcome<()>, Error> {
        let mut call = Self::call(
            Method::Post,
            format!("{ME}/messages/{}/permanentDelete", encode(id)),
            None,
        );
        call.idempotent = false;
        self.change(call).map(|o| o.map(|_| ()))
    }

    /// A change to one message: the id Graph answers with, or `Gone` on 404.
    fn change(&self, call: Call) -> Result<Outcome<String>, Error> {
        let reply = self.http.one(call)?;
        if reply.status == 404 {
            return Ok(Outcome::Gone);
        }
        success(&reply)?;
        if reply.body.is_empty() {
            return Ok(Outcome::Done(String::new()));
        }
        Ok(Outcome::Done(parse::<Created>(&reply.body)?.id))
    }

    /// Stores a message, MIME as given, in a folder; its id.
    pub fn create(&self, folder_id: &str, raw: &[u8]) -> Result<String, Error> {
        let call = mime_call(
            format!("{ME}/mailFolders/{}/messages", encode(folder_id)),
            raw,
        );
        let reply = self.http.one(call)?;
        success(&reply)?;
        Ok(parse::<Created>(&reply.body)?.id)
    }

    /// Sends a message, MIME as given; Graph files it in Sent Items. `Err(reason)` inside
    /// when Graph refused the message itself (400), or would: a request body larger than
    /// Graph takes.
    pub fn send_mail(&self, raw: &[u8]) -> Result<Result<(), String>, Error> {
        let encoded = raw.len().div_ceil(3) * 4;
        if encoded > MAX_REQUEST_BODY {
            return Ok(Err(format!(
                "Microsoft Graph takes a message in MIME form of at most {} MiB encoded; this one is {:.1} MiB",
                MAX_REQUEST_BODY >> 20,
                encoded as f64 / f64::from(1 << 20)
            )));
        }
        let reply = self.http.one(mime_call(format!("{ME}/sendMail"), raw))?;
        if reply.status == 400 {
            let api = ApiError::parse(&reply.body).unwrap_or_default();
            return Ok(Err(format!("{}: {}", api.code, api.message)));
        }
        success(&reply).map(Ok)
    }
}

/// A POST of a message in MIME format: its base64 as `text/plain`.
fn mime_call(path: String, raw: &[u8]) -> Call {
    Call {
        method: Method::Post,
        path,
        headers: Vec::new(),
        body: Some(STANDARD.encode(raw).into_bytes()),
        content_type: Some("text/plain".into()),
        cost: 1,
        idempotent: false,
    }
}

impl<T> Outcome<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Done(v) => Outcome::Done(f(v)),
            Outcome::Gone => Outcome::Gone,
        }
    }
}

/// The folders among `folders` that hold others.
fn parents(folders: &[MailFolder]) -> Vec<String> {
    folders
        .iter()
        .filter(|f| f.child_folder_count > 0)
        .map(|f| f.id.clone())
        .collect()
}

/// A 2xx answer, or the error it says.
pub fn success(reply: &Reply) -> Result<(), Error> {
    if (200..300).contains(&reply.status) {
        Ok(())
    } else {
        Err(from_status(reply.status, &reply.body))
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|e| protocol(format!("Microsoft Graph answered JSON it should not ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_delta_call_filters_and_orders() {
        assert_eq!(
            Graph::first_delta("AAMk=", 1_796_624_688_000),
            "/v1.0/me/mailFolders/AAMk%3D/messages/delta?$select=id,receivedDateTime,isRead,isDraft,flag,parentFolderId&$filter=receivedDateTime%20ge%202026-12-07T06%3A24%3A48Z&$orderby=receivedDateTime%20desc"
        );
    }

    #[test]
    fn delta_entries_read_changes_and_removals() {
        let page: DeltaPage = serde_json::from_str(
            r##"{"@odata.context":"x","value":[
                {"@odata.type":"#microsoft.graph.message","@odata.etag":"W/\"x\"","id":"AAk1","receivedDateTime":"2026-12-07T06:24:48Z","isRead":true,"isDraft":false,"flag":{"flagStatus":"flagged"},"parentFolderId":"AQ"},
                {"@odata.type":"#microsoft.graph.message","id":"AAk2","@removed":{"reason":"deleted"}}
            ],"@odata.deltaLink":"https://graph.example/v1.0/me/mailFolders/AQ/messages/delta?$deltatoken=abc"}"##,
        )
        .unwrap();
        assert_eq!(page.value.len(), 2);
        assert!(
            page.value[0].removed.is_none() && page.value[0].flagged() && page.value[0].is_read
        );
        assert!(page.value[1].removed.is_some());
        assert!(page.next_link.is_none() && page.delta_link.is_some());
    }

    #[test]
    fn throttling_answers_are_retried() {
        assert_eq!(classify(429, b""), Class::RateLimited);
        assert_eq!(classify(503, b""), Class::RateLimited);
        assert_eq!(classify(502, b""), Class::ServerError);
        assert_eq!(classify(404, b""), Class::Final);
    }
}
