//! CRM records: `PUT`/`GET`/`DELETE /v1/records/{type}/{id}`, `GET /v1/records/{type}`, and
//! a record's timeline, `GET /v1/records/{type}/{id}/messages` (with `/{message_id}`).
//!
//! `admin` and `service` callers write. Who reads (see [`Viewer::sight`]): the CRM's bare service
//! token everything; a user every record the CRM did not restrict with `visible_to`, with its
//! whole timeline across accounts; a contact Mailroom created only while an account the user
//! may open holds mail filed under it, and of its timeline only those accounts' messages. So
//! a member cannot read other people's mail by having their own account create contacts.

use super::accounts::can_see;
use super::auth::Caller;
use super::body::{self, List, Required, Text};
use super::error::ApiError;
use super::paging::{PageRequest, cursor};
use super::{App, json, json_status, no_content};
use crate::mail::message::Message;
use crate::mail::render;
use crate::record::{
    Company, Contact, CreatedBy, Deal, Record, RecordRef, RecordType, normalize_domain,
    normalize_email, valid_id,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;

/// Most emails, domains or linked ids one record may list.
const MAX_ITEMS: usize = 100;
/// Most users one record may be restricted to.
const MAX_VISIBLE_TO: usize = 1000;

fn reference(kind: &str, id: &str) -> Result<RecordRef, ApiError> {
    let kind = RecordType::parse(kind).ok_or_else(|| ApiError::not_found("record type"))?;
    if !valid_id(id) {
        return Err(ApiError::invalid(
            "id",
            "must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
        ));
    }
    Ok(RecordRef {
        kind,
        id: id.to_owned(),
    })
}

/// The CRM's service writes; so does an admin.
fn may_write(caller: &Caller) -> Result<(), ApiError> {
    caller.admin_or_service("records are written by")
}

/// A `PUT` body; which of the lists a record takes depends on its type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordBody {
    name: Option<Text<200>>,
    emails: Option<List<String, MAX_ITEMS>>,
    domains: Option<List<String, MAX_ITEMS>>,
    contact_ids: Option<List<String, MAX_ITEMS>>,
    company_ids: Option<List<String, MAX_ITEMS>>,
    /// Absent or null for everyone, else the ids of the users who may see the record (users
    /// not created yet are accepted, like the CRM's other ids).
    visible_to: Option<List<String, MAX_VISIBLE_TO>>,
}

/// A list of distinct values, each normalized by `normalize` or refused.
fn distinct(
    values: Option<List<String, MAX_ITEMS>>,
    name: &str,
    normalize: impl Fn(&str) -> Option<String>,
    what: &str,
) -> Result<Vec<String>, ApiError> {
    let mut seen = BTreeSet::new();
    let mut normalized = Vec::new();
    for raw in values.map(|l| l.0).unwrap_or_default() {
        let value = normalize(&raw)
            .ok_or_else(|| ApiError::invalid(name, format!("`{raw}` is not {what}")))?;
        if seen.insert(value.clone()) {
            normalized.push(value);
        }
    }
    Ok(normalized)
}

fn ids(values: Option<List<String, MAX_ITEMS>>, name: &str) -> Result<Vec<String>, ApiError> {
    distinct(
        values,
        name,
        |id| valid_id(id).then(|| id.to_owned()),
        "a record id",
    )
}

/// The record a `PUT` body describes.
fn parse(reference: &RecordRef, body: &Value) -> Result<Record, ApiError> {
    let id = reference.id.clone();
    let fields: RecordBody = body::parse(body)?;
    let takes: &[&str] = match reference.kind {
        RecordType::Contacts => &["emails", "company_ids"],
        RecordType::Companies => &["domains"],
        RecordType::Deals => &["contact_ids", "company_ids"],
    };
    let given = [
        ("emails", fields.emails.is_some()),
        ("domains", fields.domains.is_some()),
        ("contact_ids", fields.contact_ids.is_some()),
        ("company_ids", fields.company_ids.is_some()),
    ];
    if let Some((other, _)) = given
        .iter()
        .find(|(name, given)| *given && !takes.contains(name))
    {
        return Err(ApiError::invalid(*other, "is not a known field"));
    }
    let name = fields.name.required("name")?.into_inner();
    let visible_to = fields.visible_to.map(|users| {
        let users: BTreeSet<String> = users.0.into_iter().collect();
        users.into_iter().collect::<Vec<_>>()
    });
    if let Some(users) = &visible_to
        && users.iter().any(|u| u.is_empty() || u.len() > 128)
    {
        return Err(ApiError::invalid("visible_to", "must list user ids"));
    }
    Ok(match reference.kind {
        RecordType::Contacts => Record::Contact(Contact {
            id,
            name,
            emails: distinct(fields.emails, "emails", normalize_email, "an email address")?,
            company_ids: ids(fields.company_ids, "company_ids")?,
            created_by: CreatedBy::Crm,
            visible_to,
        }),
        RecordType::Companies => Record::Company(Company {
            id,
            name,
            domains: distinct(fields.domains, "domains", normalize_domain, "a domain")?,
            visible_to,
        }),
        RecordType::Deals => Record::Deal(Deal {
            id,
            name,
            contact_ids: ids(fields.contact_ids, "contact_ids")?,
            company_ids: ids(fields.company_ids, "company_ids")?,
            visible_to,
        }),
    })
}

/// Which of a record's mail a caller sees, when they may see the record at all.
pub enum Sight {
    /// The whole timeline, across every account.
    Everything,
    /// Only the messages of these accounts (the ones the caller may open).
    Accounts(Arc<HashSet<String>>),
}

impl Sight {
    fn accounts(&self) -> Option<&HashSet<String>> {
        match self {
            Sight::Everything => None,
            Sight::Accounts(accounts) => Some(accounts),
        }
    }
}

/// A caller looking at records, and once needed the accounts they may open: read once for
/// a whole request, however many records or events it judges.
pub struct Viewer<'a> {
    caller: &'a Caller,
    accounts: Option<Arc<HashSet<String>>>,
}

impl<'a> Viewer<'a> {
    pub fn new(caller: &'a Caller) -> Self {
        Self {
            caller,
            accounts: None,
        }
    }

    /// Reads the caller's accounts again when next needed (accounts come and go while an
    /// event request waits).
    pub fn refresh(&mut self) {
        self.accounts = None;
    }

    /// The ids of the accounts the caller may open; `None` for the bare service token,
    /// which sees everything.
    pub async fn accounts(&mut self, app: &App) -> Result<Option<Arc<HashSet<String>>>, ApiError> {
        let Some(user) = &self.caller.user else {
            return Ok(None);
        };
        if self.accounts.is_none() {
            let open = app
                .store
                .accounts()
                .await?
                .into_iter()
                .filter(|account| can_see(user, account))
                .map(|account| account.id)
                .collect();
            self.accounts = Some(Arc::new(open));
        }
        Ok(self.accounts.clone())
    }

    /// Of the records each message is filed under, those the caller may know exist, in
    /// their order.
    pub async fn known(
        &mut self,
        app: &App,
        filed: Vec<Vec<RecordRef>>,
    ) -> Result<Vec<Vec<RecordRef>>, ApiError> {
        if self.caller.user.is_none() {
            return Ok(filed);
        }
        let mut known: HashMap<RecordRef, bool> = HashMap::new();
        for reference in filed.iter().flatten() {
            if known.contains_key(reference) {
                continue;
            }
            let seen = match app.store.record(reference).await? {
                Some(record) => self.sight(app, &record).await?.is_some(),
                None => false,
            };
            known.insert(reference.clone(), seen);
        }
        Ok(filed
            .into_iter()
            .map(|refs| refs.into_iter().filter(|r| known[r]).collect())
            .collect())
    }

    /// What the caller may see of `record`; `None` when they may not know it exists.
    pub async fn sight(&mut self, app: &App, record: &Record) -> Result<Option<Sight>, ApiError> {
        // The CRM's back end itself mirrors every record, created contacts included.
        let Some(user) = &self.caller.user else {
            return Ok(Some(Sight::Everything));
        };
        if record
            .visible_to()
            .is_some_and(|users| !users.contains(&user.id))
        {
            return Ok(None);
        }
        if !record.created_by_mailroom() {
            return Ok(Some(Sight::Everything));
        }
        let accounts = self.accounts(app).await?.unwrap_or_default();
        let (held, _) = app
            .store
            .timeline(&record.reference(), Some(&accounts), None, 1)
            .await?;
        Ok((!held.is_empty()).then_some(Sight::Accounts(accounts)))
    }
}

fn view(record: &Record) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

/// `PUT /v1/records/{type}/{id}`: 201 when created, 200 when replaced.
pub async fn put(
    app: &App,
    caller: &Caller,
    kind: &str,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    may_write(caller)?;
    let reference = reference(kind, id)?;
    let record = parse(&reference, body)?;
    let created = app.store.put_record(record.clone()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_status(&view(&record), status))
}

/// `GET /v1/records/{type}/{id}`
pub async fn get(app: &App, caller: &Caller, kind: &str, id: &str) -> Result<Response, ApiError> {
    let (record, _) = seen(app, caller, kind, id).await?;
    Ok(json(&view(&record)))
}

/// `DELETE /v1/records/{type}/{id}`
pub async fn delete(
    app: &App,
    caller: &Caller,
    kind: &str,
    id: &str,
) -> Result<Response, ApiError> {
    may_write(caller)?;
    let reference = reference(kind, id)?;
    if app.store.delete_record(&reference).await? {
        Ok(no_content())
    } else {
        Err(ApiError::not_found("record"))
    }
}

/// `GET /v1/records/{type}?created_by=`: the records the caller may see; a page may hold
/// fewer than `limit` when some are hidden from the caller.
pub async fn list_records(
    app: &App,
    caller: &Caller,
    kind: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let kind = RecordType::parse(kind).ok_or_else(|| ApiError::not_found("record type"))?;
    let page = PageRequest::from_query(query)?;
    let created_by = match query.get("created_by").map(String::as_str) {
        None | Some("") => None,
        Some("mailroom") => Some(CreatedBy::Mailroom),
        Some("crm") => Some(CreatedBy::Crm),
        Some(_) => {
            return Err(ApiError::invalid(
                "created_by",
                "must be `mailroom` or `crm`",
            ));
        }
    };
    let (records, more) = app
        .store
        .records(kind, created_by, page.after.clone(), page.limit)
        .await?;
    let next_cursor = more
        .then(|| records.last().map(|r| cursor(&r.reference().id)))
        .flatten();
    let mut viewer = Viewer::new(caller);
    let mut items = Vec::with_capacity(records.len());
    for record in &records {
        if viewer.sight(app, record).await?.is_some() {
            items.push(view(record));
        }
    }
    Ok(json(&json!({"items": items, "next_cursor": next_cursor})))
}

/// The record and what the caller sees of it; 404 when it does not exist or is hidden from
/// the caller.
async fn seen(
    app: &App,
    caller: &Caller,
    kind: &str,
    id: &str,
) -> Result<(Record, Sight), ApiError> {
    let reference = reference(kind, id)?;
    let record = app
        .store
        .record(&reference)
        .await?
        .ok_or_else(|| ApiError::not_found("record"))?;
    match Viewer::new(caller).sight(app, &record).await? {
        Some(sight) => Ok((record, sight)),
        None => Err(ApiError::not_found("record")),
    }
}

/// `GET /v1/records/{type}/{id}/messages`
pub async fn timeline(
    app: &App,
    caller: &Caller,
    kind: &str,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let (record, sight) = seen(app, caller, kind, id).await?;
    let page = PageRequest::from_query(query)?;
    let after = super::messages::after_key(&page)?;
    let (messages, more) = app
        .store
        .timeline(&record.reference(), sight.accounts(), after, page.limit)
        .await?;
    super::messages::message_page(app, caller, &messages, more).await
}

/// A message on a record's timeline as the caller sees it; 404 for one that is not.
async fn on_timeline(
    app: &App,
    caller: &Caller,
    kind: &str,
    id: &str,
    message_id: &str,
) -> Result<(RecordRef, Message), ApiError> {
    let (record, sight) = seen(app, caller, kind, id).await?;
    let reference = record.reference();
    if !app.store.on_timeline(&reference, message_id).await? {
        return Err(ApiError::not_found("message"));
    }
    let message = app
        .store
        .message(message_id)
        .await?
        .filter(|m| !m.is_removed())
        .filter(|m| sight.accounts().is_none_or(|a| a.contains(&m.account_id)))
        .ok_or_else(|| ApiError::not_found("message"))?;
    Ok((reference, message))
}

/// `GET /v1/records/{type}/{id}/messages/{message_id}`: the full message, for anyone who
/// may read the record; inline images and attachments are served through the record too.
pub async fn timeline_message(
    app: &App,
    caller: &Caller,
    kind: &str,
    id: &str,
    message_id: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let (reference, message) = on_timeline(app, caller, kind, id, message_id).await?;
    let mode = match super::messages::html_mode(query)? {
        // The timeline serves the sanitized view only.
        render::Html::Raw => return Err(ApiError::invalid("html", "is not offered on a timeline")),
        mode => mode,
    };
    let records = super::messages::records_of(app, caller, &message.id).await?;
    let attachments_url = format!(
        "/v1/records/{}/{}/messages/{}/attachments",
        reference.kind.as_str(),
        reference.id,
        message.id
    );
    super::messages::full_view(app, message, records, mode, attachments_url).await
}

/// `GET /v1/records/{type}/{id}/messages/{message_id}/attachments/{attachment_id}`
pub async fn timeline_attachment(
    app: &App,
    caller: &Caller,
    kind: &str,
    id: &str,
    message_id: &str,
    attachment_id: &str,
) -> Result<Response, ApiError> {
    let (_, message) = on_timeline(app, caller, kind, id, message_id).await?;
    super::messages::attachment_of(app, &message, attachment_id).await
}
