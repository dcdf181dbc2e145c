//! `GET /v1/openapi.json`: the OpenAPI 3 description of the API, built from the routes'
//! declarations ([`super::routes::ROUTES`]) and the shapes of their bodies.

use super::connectors::COMPONENT_MEDIA_TYPE;
use super::routes::{BodyLimit, ROUTES, Route};
use serde_json::{Value, json};

fn operation_id(route: &Route) -> String {
    format!("{} {}", route.method, route.path)
}

/// Where a response leads: from an operation that creates something to every operation on
/// it (its id from the answer, or from the path it was put at), and from a send to its
/// outbox entry and a message list to its first message. These let a client (or a test
/// tool) follow the API from the ids it is given.
fn links(route: &Route) -> serde_json::Map<String, Value> {
    let mut links = serde_json::Map::new();
    let mut link = |target: &Route, parameters: Value| {
        links.insert(
            format!("{} {}", target.method, target.path).replace(['/', '{', '}', ' '], "_"),
            json!({"operationId": operation_id(target), "parameters": parameters}),
        );
    };
    let targets = |prefix: &str| {
        let prefix = prefix.to_owned();
        ROUTES
            .iter()
            .filter(move |t| t.path.starts_with(&prefix) && t.path != prefix)
    };
    match (route.method, route.ok.0) {
        // A new item of a collection: the operations on `{collection}/{param}…`.
        ("post", 201) => {
            for target in targets(&format!("{}/{{", route.path)) {
                let rest = &target.path[route.path.len() + 2..];
                let param = rest.split('}').next().unwrap_or("id");
                link(target, json!({param: "$response.body#/id"}));
            }
        }
        // An item put at its own path: the operations on it and below.
        ("put", _) if route.path.ends_with('}') => {
            let params: serde_json::Map<String, Value> = route
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .map(|p| (p.to_owned(), json!(format!("$request.path.{p}"))))
                .collect();
            for target in ROUTES
                .iter()
                .filter(|t| t.path.starts_with(route.path) && !std::ptr::eq(*t, route))
            {
                link(target, Value::Object(params.clone()));
            }
        }
        _ => {}
    }
    let outbox = ROUTES.iter().find(|t| t.path == "/v1/outbox/{id}");
    if route.path == "/v1/accounts/{id}/send"
        && let Some(target) = outbox
    {
        link(target, json!({"id": "$response.body#/outbox_id"}));
    }
    if route.path == "/v1/accounts/{id}/messages" {
        for target in ROUTES.iter().filter(|t| t.path == "/v1/messages/{id}") {
            link(target, json!({"id": "$response.body#/items/0/id"}));
        }
    }
    links
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema_ref("Error")}}})
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                let schema = match name {
                    "type" => json!({"type": "string", "enum": ["contacts", "companies", "deals"]}),
                    // The CRM's own ids.
                    "id" if route.path.starts_with("/v1/records/") => {
                        json!({"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"})
                    }
                    _ => json!({"type": "string", "minLength": 1}),
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        if route.paged {
            parameters.push(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}));
            parameters.push(json!({"name": "cursor", "in": "query", "schema": {"type": "string"}}));
        }
        for (name, schema, description) in route.query {
            let schema: Value = serde_json::from_str(schema).expect("a query schema is JSON");
            parameters.push(
                json!({"name": name, "in": "query", "description": description, "schema": schema}),
            );
        }
        if route.auth {
            parameters.push(json!({"name": "X-Mailroom-User", "in": "header", "description": "For service tokens: the user to act as.", "schema": {"type": "string"}}));
        }
        if route.idempotent {
            parameters.push(json!({"name": "Idempotency-Key", "in": "header", "description": "A retry with the same key within 24 h returns the first result.", "schema": {"type": "string", "minLength": 1, "maxLength": 255}}));
        }
        let (status, schema) = route.ok;
        let success = match (schema, route.paged) {
            (Some(item), true) => {
                json!({"description": "A page", "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["items", "next_cursor"],
                    "properties": {"items": {"type": "array", "items": schema_ref(item)}, "next_cursor": {"type": "string", "nullable": true}},
                }}}})
            }
            (Some(name), false) => {
                json!({"description": "Success", "content": {"application/json": {"schema": schema_ref(name)}}})
            }
            (None, _) => json!({"description": "Success"}),
        };
        let mut success = success;
        let links = links(route);
        if !links.is_empty() {
            success["links"] = Value::Object(links);
        }
        let mut responses = serde_json::Map::new();
        if route.may_create {
            responses.insert("201".into(), success.clone());
        }
        responses.insert(status.to_string(), success);
        responses.insert(
            "default".into(),
            error_response("Any other answer is an error in this shape"),
        );
        responses.insert("400".into(), error_response("Malformed request"));
        if route.auth {
            responses.insert("401".into(), error_response("Missing or unknown token"));
            responses.insert("403".into(), error_response("Not allowed"));
            responses.insert(
                "404".into(),
                error_response("Not found, or not visible to the caller"),
            );
        }
        if route.body.is_some() {
            responses.insert(
                "422".into(),
                error_response("A field is invalid (`field` names it)"),
            );
            responses.insert("413".into(), error_response("Body too large"));
        }
        let mut operation = json!({
            "summary": route.summary,
            "operationId": operation_id(route),
            "parameters": parameters,
            "responses": responses,
        });
        if route.browser {
            // A browser is sent on (303) or shown a page; JSON only when asked for.
            let page = json!({"text/html": {"schema": {"type": "string"}}});
            operation["responses"]["303"] = json!({"description": "On to the configured return page, with `account_id` or `error`"});
            for status in [status.to_string(), "400".into(), "422".into(), "502".into()] {
                let response = operation["responses"]
                    .get(&status)
                    .cloned()
                    .unwrap_or_else(|| error_response("The sign-in failed (`code` says why)"));
                operation["responses"][status.as_str()] = response;
                if let Some(content) = operation["responses"][status.as_str()]
                    .get_mut("content")
                    .and_then(Value::as_object_mut)
                {
                    content.extend(page.as_object().cloned().unwrap_or_default());
                }
            }
        }
        if route.auth {
            operation["security"] = json!([{"bearer": []}]);
        } else {
            operation["security"] = json!([]);
        }
        match route.body {
            Some(_) if route.body_limit == BodyLimit::Component => {
                operation["requestBody"] = json!({"required": true, "content": {
                    COMPONENT_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}});
                operation["responses"]["409"] =
                    error_response("The id is taken, built in, or in use (`code` says which)");
                operation["responses"]["415"] = error_response("Not `application/wasm`");
            }
            Some(body) => {
                operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema_ref(body)}}});
            }
            None => {}
        }
        paths
            .entry(route.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object")
            .insert(route.method.to_owned(), operation);
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Mailroom", "version": env!("CARGO_PKG_VERSION"), "description": "The email back end of a CRM."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
    })
}

/// Text as the API takes it: trimmed, not blank, no control characters, at most `max`.
fn text(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max,
           "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"})
}

fn nullable(mut schema: Value) -> Value {
    schema["nullable"] = json!(true);
    schema
}

/// A request body's object: only the properties named; an optional one may also be `null`,
/// which the API takes as absent.
fn request(required: &[&str], mut properties: Value) -> Value {
    if let Some(properties) = properties.as_object_mut() {
        for (name, schema) in properties.iter_mut() {
            if !required.contains(&name.as_str()) && schema.get("type").is_some() {
                schema["nullable"] = json!(true);
            }
        }
    }
    json!({"type": "object", "required": required, "properties": properties,
           "additionalProperties": false})
}

fn schemas() -> Value {
    let string = json!({"type": "string"});
    let nullable_string = json!({"type": "string", "nullable": true});
    let external_id = json!({"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"});
    let server = json!({"type": "object", "required": ["host", "port", "encryption"], "properties": {
        "host": string, "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "encryption": {"type": "string", "enum": ["ssl", "starttls", "none"]}}});
    let role = json!({"type": "string", "nullable": true, "enum": ["inbox", "sent", "drafts", "trash", "spam", "archive", "all", null]});
    let email = json!({"type": "string", "format": "email", "maxLength": 254});
    let connection = json!({
        "connector": {"type": "string", "pattern": "^[a-z0-9_-]{1,32}$"},
        "email": email, "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "username": {"type": "string", "nullable": true, "minLength": 1, "maxLength": 254},
        "imap": schema_ref("ServerInput"), "smtp": schema_ref("ServerInput"),
        "allow_insecure_certificate": {"type": "boolean"},
        "settings": {"type": "object", "additionalProperties": {"type": "string"}},
    });
    let mut account_create = connection.clone();
    let create_extra = json!({
        "kind": {"type": "string", "enum": ["shared", "personal"]},
        "sync_from": {"type": "string", "enum": ["now", "1_month", "3_months", "6_months"]},
        "create_contact": {"type": "boolean"},
        "active_folders": {"type": "array", "items": string},
        "display_name": text(200),
    });
    if let (Some(target), Some(extra)) = (account_create.as_object_mut(), create_extra.as_object())
    {
        target.extend(extra.clone());
    }
    let mut reconnect = connection.clone();
    if let Some(target) = reconnect.as_object_mut() {
        target.insert(
            "active_folders".into(),
            json!({"type": "array", "items": string}),
        );
    }
    let user = json!({
        "id": string, "name": string, "email": string,
        "role": {"type": "string", "enum": ["admin", "member"]},
        "shared_inbox": {"type": "boolean"}, "external_id": nullable_string, "created_at": string,
        "disabled": {"type": "boolean"},
    });
    let mut me = user.clone();
    if let Some(target) = me.as_object_mut() {
        target.insert("signature".into(), nullable_string.clone());
        target.insert("signature_text".into(), nullable_string.clone());
        target.insert("primary_account_id".into(), nullable_string.clone());
    }
    let addresses = json!({"type": "array", "items": schema_ref("Address")});
    let message = json!({
        "id": string, "account_id": string, "folder_ids": {"type": "array", "items": string},
        "message_id": nullable_string, "thread_id": string, "subject": nullable_string,
        "from": schema_ref("Address"), "to": addresses, "cc": addresses, "bcc": addresses,
        "reply_to": addresses, "date": nullable_string, "received_at": string, "snippet": string,
        "seen": {"type": "boolean"}, "flagged": {"type": "boolean"}, "answered": {"type": "boolean"},
        "has_attachments": {"type": "boolean"}, "size": {"type": "integer"},
        "records": {"type": "array", "items": {"type": "object", "properties": {"type": string, "id": string}}},
    });
    let mut message_full = message.clone();
    if let Some(target) = message_full.as_object_mut() {
        target.insert("text".into(), nullable_string.clone());
        target.insert("html".into(), nullable_string.clone());
        target.insert("remote_content".into(), json!({"type": "boolean"}));
        target.insert(
            "attachments".into(),
            json!({"type": "array", "items": schema_ref("Attachment")}),
        );
    }
    let mut schemas = json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": string, "message": string, "field": string}}}},
        "Health": {"type": "object", "properties": {"status": string}},
        "Connector": {"type": "object", "properties": {
            "id": string, "name": string, "version": string, "wit_version": string,
            "auth": {"type": "string", "enum": ["password", "oauth2"]},
            "servers": {"type": "array", "items": string},
            "hosts": {"type": "array", "items": string}, "granted_hosts": {"type": "array", "items": string},
            "files_sent": {"type": "boolean"}, "mailbox_wide_ids": {"type": "boolean"},
            "configured": {"type": "boolean"},
            "builtin": {"type": "boolean"}, "digest": string}},
        "ConnectorPatch": request(&[], json!({
            "granted_hosts": {"type": "array", "maxItems": 16, "items": text(253)}})),
        "OauthStart": request(&[], json!({
            "kind": {"type": "string", "enum": ["shared", "personal"]},
            "sync_from": {"type": "string", "enum": ["now", "1_month", "3_months", "6_months"]},
            "create_contact": {"type": "boolean"},
            "account_id": text(64)})),
        "OauthStarted": {"type": "object", "required": ["authorize_url"], "properties": {"authorize_url": string}},
        "User": {"type": "object", "properties": user},
        "UserCreate": request(&["name", "email", "role"], json!({
            "name": text(200), "email": email, "role": {"type": "string", "enum": ["admin", "member"]},
            "shared_inbox": {"type": "boolean"}, "external_id": external_id})),
        "UserPatch": request(&[], json!({
            "name": text(200), "email": email, "role": {"type": "string", "enum": ["admin", "member"]},
            "shared_inbox": {"type": "boolean"},
            "external_id": {"type": "string", "nullable": true, "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
            "disabled": {"type": "boolean"}})),
        "TokenInfo": {"type": "object", "properties": {"id": string, "name": string,
            "created_at": string, "last_used_at": nullable_string}},
        "Me": {"type": "object", "properties": me},
        "MePatch": request(&[], json!({"signature": {"type": "string", "nullable": true, "maxLength": 16384}})),
        "TokenCreate": request(&["name"], json!({"name": text(100)})),
        "NewToken": {"type": "object", "properties": {"id": string, "token": string, "name": string, "created_at": string}},
        "Server": server,
        "ServerInput": request(&["host", "port", "encryption"], json!({
            "host": {"type": "string", "minLength": 1, "maxLength": 253},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "encryption": {"type": "string", "enum": ["ssl", "starttls", "none"]}})),
        "Connection": request(&["connector", "email", "password"], connection),
        "TestResult": {"type": "object", "required": ["ok"], "properties": {
            "ok": {"type": "boolean"},
            "folders": {"type": "array", "items": schema_ref("Folder")},
            "stage": string,
            "error": {"type": "object", "properties": {"code": string, "message": string}}}},
        "Folder": {"type": "object", "properties": {"id": string, "name": string, "role": role,
            "selectable": {"type": "boolean"}, "default_active": {"type": "boolean"}}},
        "AccountCreate": request(&["connector", "email", "password", "kind", "sync_from"], account_create),
        "AccountPatch": request(&[], json!({
            "display_name": nullable(text(200)),
            "create_contact": {"type": "boolean"},
            "active_folders": {"type": "array", "maxItems": 1000, "items": string}, "enabled": {"type": "boolean"}})),
        "Reconnect": request(&["connector", "email", "password"], reconnect),
        "Account": {"type": "object", "properties": {
            "id": string, "kind": {"type": "string", "enum": ["shared", "personal"]}, "owner_id": string,
            "connector": string, "email": string, "display_name": nullable_string, "username": nullable_string,
            "sync_from": {"type": "string", "enum": ["now", "1_month", "3_months", "6_months"]},
            "sync_from_date": string, "create_contact": {"type": "boolean"}, "primary": {"type": "boolean"},
            "enabled": {"type": "boolean"},
            "state": {"type": "string", "enum": ["connecting", "syncing", "active", "auth_required", "error", "disabled"]},
            "state_reason": nullable_string, "state_since": string, "next_retry_at": nullable_string,
            "last_sync_at": nullable_string,
            "last_sync_duration_ms": {"type": "integer", "nullable": true},
            "imap": schema_ref("Server"), "smtp": schema_ref("Server"),
            "allow_insecure_certificate": {"type": "boolean"},
            "settings": {"type": "object", "additionalProperties": true},
            "folders": {"type": "array", "items": schema_ref("AccountFolder")},
            "created_at": string, "push": schema_ref("Push")}},
        "Push": {"type": "object", "properties": {
            "state": {"type": "string", "enum": ["starting", "watching", "polling", "off"]},
            "method": nullable_string,
            "folders": {"type": "array", "items": string},
            "check_secs": {"type": "integer", "nullable": true},
            "reason": nullable_string}},
        "AccountFolder": {"type": "object", "properties": {"id": string, "name": string, "role": role,
            "selectable": {"type": "boolean"}, "active": {"type": "boolean"}}},
        "SyncRequested": {"type": "object", "properties": {"requested_at": string}},
        "Address": {"type": "object", "properties": {"name": nullable_string, "email": string}},
        "Message": {"type": "object", "properties": message},
        "MessageFull": {"type": "object", "properties": message_full},
        "Attachment": {"type": "object", "properties": {"id": string, "filename": nullable_string,
            "content_type": string, "size": {"type": "integer"}, "inline": {"type": "boolean"},
            "content_id": nullable_string}},
        "Event": {"type": "object", "properties": {"seq": {"type": "integer"}, "type": string,
            "at": string, "data": {"type": "object", "additionalProperties": true}}},
        "RecordRef": {"type": "object", "properties": {"type": {"type": "string", "enum": ["contacts", "companies", "deals"]}, "id": string}},
        "RecordPut": request(&["name"], json!({"name": text(200),
            "emails": {"type": "array", "items": email}, "domains": {"type": "array", "items": string},
            "company_ids": {"type": "array", "items": string}, "contact_ids": {"type": "array", "items": string},
            "visible_to": {"type": "array", "nullable": true, "items": string}})),
        "Record": {"type": "object", "properties": {"type": {"type": "string", "enum": ["contacts", "companies", "deals"]},
            "id": string, "name": string, "emails": {"type": "array", "items": string},
            "domains": {"type": "array", "items": string}, "company_ids": {"type": "array", "items": string},
            "contact_ids": {"type": "array", "items": string},
            "created_by": {"type": "string", "enum": ["crm", "mailroom"]},
            "visible_to": {"type": "array", "nullable": true, "items": string}}},
        "MessagePatch": {"type": "object", "minProperties": 1, "additionalProperties": false,
            "properties": {"seen": {"type": "boolean"}, "flagged": {"type": "boolean"}}},
        "MessageMove": request(&["folder_id"], json!({"folder_id": text(512)})),
        "Recipient": request(&["email"], json!({"email": email, "name": text(200)})),
        "Send": {"type": "object", "additionalProperties": false, "properties": {
            "to": {"type": "array", "items": schema_ref("Recipient")},
            "cc": {"type": "array", "items": schema_ref("Recipient")},
            "bcc": {"type": "array", "items": schema_ref("Recipient")},
            "subject": string, "text": string, "html": string,
            "attachments": {"type": "array", "items": {"type": "object",
                "required": ["filename", "content_base64"],
                "properties": {"filename": string, "content_type": string, "content_base64": string}}},
            "in_reply_to": string, "signature": {"type": "boolean"}}},
        "SendQueued": {"type": "object", "properties": {"outbox_id": string, "message_id": string}},
        "OutboxEntry": {"type": "object", "properties": {"id": string, "kind": string,
            "account_id": string,
            "state": {"type": "string", "enum": ["queued", "sending", "sent", "failed"]},
            "error": nullable_string, "message_id": string, "sent_message_id": nullable_string,
            "recipients": {"type": "array", "items": {"type": "object", "properties": {
                "email": string, "accepted": {"type": "boolean"}, "reply": string}}},
            "created_at": string}},
        "AccountFolderCounts": {"type": "object", "properties": {"id": string, "name": string, "role": role,
            "active": {"type": "boolean"}, "unread": {"type": "integer"}, "total": {"type": "integer"},
            "server_total": {"type": "integer", "nullable": true}}},
    });
    let mut types: Vec<&str> = vec!["*"];
    types.extend(crate::store::mail::EVENT_TYPES);
    let event_types = json!({"type": "array", "minItems": 1, "maxItems": 32,
        "items": {"type": "string", "enum": types}});
    let url = json!({"type": "string", "format": "uri", "pattern": "^https?://[^/?#\\s]+", "maxLength": 2048});
    let webhook = json!({
        "id": string, "url": string, "events": {"type": "array", "items": string},
        "enabled": {"type": "boolean"}, "disabled_reason": nullable_string, "created_at": string,
    });
    let mut created = webhook.clone();
    created["secret"] = string.clone();
    let webhooks = json!({
        "WebhookCreate": request(&["url", "events"], json!({"url": url, "events": event_types,
            "secret": {"type": "string", "maxLength": 94,
                "pattern": "^whsec_(?:[A-Za-z0-9+/]{4}){8,21}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"}})),
        "WebhookPatch": request(&[], json!({"url": url, "events": event_types,
            "enabled": {"type": "boolean"}})),
        "Webhook": {"type": "object", "properties": webhook},
        "WebhookCreated": {"type": "object", "properties": created},
        "Delivery": {"type": "object", "properties": {"id": string, "event_seq": {"type": "integer"},
            "type": string, "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "attempts": {"type": "integer"}, "last_status": {"type": "integer", "nullable": true},
            "last_error": nullable_string, "next_attempt_at": nullable_string}},
    });
    if let (Some(all), Some(more)) = (schemas.as_object_mut(), webhooks.as_object()) {
        all.extend(more.clone());
    }
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_once_with_its_headers_and_parameters() {
        let document = document();
        let paths = document["paths"].as_object().unwrap();
        let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(operations, ROUTES.len());
        let send = &paths["/v1/accounts/{id}/send"]["post"];
        let headers: Vec<&str> = send["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(headers.contains(&"Idempotency-Key"), "{headers:?}");
        let events = &paths["/v1/events"]["get"]["parameters"];
        assert!(
            events
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "wait"),
            "{events}"
        );
    }
}
