//! CRM records: `PUT`/`GET`/`DELETE /v1/records/{type}/{id}`, `GET /v1/records/{type}`, and
//! a record's timeline, `GET /v1/records/{type}/{id}/messages` (with `/{message_id}`).
//! `admin` and `service` callers write; every authenticated caller reads, timelines
//! included, whichever accounts the messages sit in.

use super::auth::Caller;
use super::body::Fields;
use super::error::ApiError;
use super::paging::{PageRequest, cursor};
use super::{App, json, json_status, no_content};
use crate::mail::message::Message;
use crate::mail::render;
use crate::record::{
    Company, Contact, CreatedBy, Deal, Record, RecordRef, RecordType, normalize_domain,
    normalize_email, valid_id,
};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use warp::http::StatusCode;
use warp::reply::Response;

/// Most emails, domains or linked ids one record may list.
const MAX_ITEMS: usize = 100;

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

/// The CRM's service writes; so does an admin. A service acting as a user has that user's
/// permissions.
fn may_write(caller: &Caller) -> Result<(), ApiError> {
    let allowed = match &caller.user {
        Some(user) => user.is_admin(),
        None => caller.service.is_some(),
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "records are written by an admin or the CRM's service",
        ))
    }
}

/// A list of distinct values, each normalized by `normalize` or refused.
fn list(
    fields: &Fields,
    name: &str,
    normalize: impl Fn(&str) -> Option<String>,
    what: &str,
) -> Result<Vec<String>, ApiError> {
    let mut seen = BTreeSet::new();
    let mut values = Vec::new();
    for raw in fields.strings(name, MAX_ITEMS)?.unwrap_or_default() {
        let value = normalize(raw)
            .ok_or_else(|| ApiError::invalid(name, format!("`{raw}` is not {what}")))?;
        if seen.insert(value.clone()) {
            values.push(value);
        }
    }
    Ok(values)
}

fn ids(fields: &Fields, name: &str) -> Result<Vec<String>, ApiError> {
    list(
        fields,
        name,
        |id| valid_id(id).then(|| id.to_owned()),
        "a record id",
    )
}

/// The record a `PUT` body describes.
fn parse(reference: &RecordRef, body: &Value) -> Result<Record, ApiError> {
    let id = reference.id.clone();
    Ok(match reference.kind {
        RecordType::Contacts => {
            let fields = Fields::new(body, &["name", "emails", "company_ids"])?;
            Record::Contact(Contact {
                id,
                name: fields.required_text("name", 200)?.to_owned(),
                emails: list(&fields, "emails", normalize_email, "an email address")?,
                company_ids: ids(&fields, "company_ids")?,
                created_by: CreatedBy::Crm,
            })
        }
        RecordType::Companies => {
            let fields = Fields::new(body, &["name", "domains"])?;
            Record::Company(Company {
                id,
                name: fields.required_text("name", 200)?.to_owned(),
                domains: list(&fields, "domains", normalize_domain, "a domain")?,
            })
        }
        RecordType::Deals => {
            let fields = Fields::new(body, &["name", "contact_ids", "company_ids"])?;
            Record::Deal(Deal {
                id,
                name: fields.required_text("name", 200)?.to_owned(),
                contact_ids: ids(&fields, "contact_ids")?,
                company_ids: ids(&fields, "company_ids")?,
            })
        }
    })
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
pub async fn get(app: &App, kind: &str, id: &str) -> Result<Response, ApiError> {
    let reference = reference(kind, id)?;
    let record = app
        .store
        .record(&reference)
        .await?
        .ok_or_else(|| ApiError::not_found("record"))?;
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

/// `GET /v1/records/{type}?created_by=`
pub async fn list_records(
    app: &App,
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
    let items: Vec<Value> = records.iter().map(view).collect();
    Ok(json(&json!({"items": items, "next_cursor": next_cursor})))
}

/// The record must exist for its timeline to be read.
async fn existing(app: &App, kind: &str, id: &str) -> Result<RecordRef, ApiError> {
    let reference = reference(kind, id)?;
    match app.store.record(&reference).await? {
        Some(_) => Ok(reference),
        None => Err(ApiError::not_found("record")),
    }
}

/// `GET /v1/records/{type}/{id}/messages`
pub async fn timeline(
    app: &App,
    kind: &str,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let reference = existing(app, kind, id).await?;
    let page = PageRequest::from_query(query)?;
    let after = super::messages::after_key(&page)?;
    let (messages, more) = app.store.timeline(&reference, after, page.limit).await?;
    super::messages::message_page(app, &messages, more).await
}

/// A message on a record's timeline; 404 for one that is not.
async fn on_timeline(
    app: &App,
    kind: &str,
    id: &str,
    message_id: &str,
) -> Result<(RecordRef, Message), ApiError> {
    let reference = existing(app, kind, id).await?;
    if !app.store.on_timeline(&reference, message_id).await? {
        return Err(ApiError::not_found("message"));
    }
    let message = app
        .store
        .message(message_id)
        .await?
        .filter(|m| !m.is_removed())
        .ok_or_else(|| ApiError::not_found("message"))?;
    Ok((reference, message))
}

/// `GET /v1/records/{type}/{id}/messages/{message_id}`: the full message, for anyone who
/// may read the record; inline images and attachments are served through the record too.
pub async fn timeline_message(
    app: &App,
    kind: &str,
    id: &str,
    message_id: &str,
) -> Result<Response, ApiError> {
    let (reference, message) = on_timeline(app, kind, id, message_id).await?;
    let raw = app
        .store
        .raw_message(&message.id)
        .await?
        .unwrap_or_default();
    let records = super::messages::records_of(app, &message.id).await?;
    let attachments_url = format!(
        "/v1/records/{}/{}/messages/{}/attachments",
        reference.kind.as_str(),
        reference.id,
        message.id
    );
    Ok(json(&render::full(
        &message,
        &raw,
        records,
        false,
        &attachments_url,
    )))
}

/// `GET /v1/records/{type}/{id}/messages/{message_id}/attachments/{attachment_id}`
pub async fn timeline_attachment(
    app: &App,
    kind: &str,
    id: &str,
    message_id: &str,
    attachment_id: &str,
) -> Result<Response, ApiError> {
    let (_, message) = on_timeline(app, kind, id, message_id).await?;
    super::messages::attachment_of(app, &message, attachment_id).await
}
