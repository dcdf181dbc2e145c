//! `GET /v1/openapi.json`: the OpenAPI 3 description of the API, built from [`ROUTES`], the
//! one list of endpoints. A test calls every route listed here and checks the server knows it.

use serde_json::{Value, json};

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Whether a bearer token is needed.
    pub auth: bool,
    /// The request body's schema.
    pub body: Option<&'static str>,
    /// The success status and its body's schema.
    pub ok: (u16, Option<&'static str>),
    /// A paged collection (`limit`, `cursor`).
    pub paged: bool,
}

const fn route(method: &'static str, path: &'static str, summary: &'static str) -> Route {
    Route {
        method,
        path,
        summary,
        auth: true,
        body: None,
        ok: (200, None),
        paged: false,
    }
}

impl Route {
    const fn public(mut self) -> Self {
        self.auth = false;
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
    const fn paged(mut self, item: &'static str) -> Self {
        self.paged = true;
        self.ok = (200, Some(item));
        self
    }
}

pub const ROUTES: &[Route] = &[
    route("get", "/healthz", "Liveness")
        .public()
        .ok(200, Some("Health")),
    route("get", "/v1/openapi.json", "This document").public(),
    route("get", "/v1/connectors", "Loaded connectors").paged("Connector"),
    route("post", "/v1/users", "Create a user (admin)")
        .body("UserCreate")
        .ok(201, Some("User")),
    route("get", "/v1/users", "List users (admin)").paged("User"),
    route("get", "/v1/users/{id}", "Get a user (admin)").ok(200, Some("User")),
    route("patch", "/v1/users/{id}", "Change a user (admin)")
        .body("UserPatch")
        .ok(200, Some("User")),
    route(
        "get",
        "/v1/users/{id}/tokens",
        "A user's tokens, never their secrets (admin)",
    )
    .paged("TokenInfo"),
    route(
        "delete",
        "/v1/users/{id}/tokens/{token_id}",
        "Revoke a user's token (admin)",
    )
    .ok(204, None),
    route("get", "/v1/me", "The caller").ok(200, Some("Me")),
    route("patch", "/v1/me", "Change the caller's signature")
        .body("MePatch")
        .ok(200, Some("Me")),
    route("post", "/v1/me/tokens", "Create a token for the caller")
        .body("TokenCreate")
        .ok(201, Some("NewToken")),
    route(
        "delete",
        "/v1/me/tokens/{token_id}",
        "Revoke one of the caller's tokens",
    )
    .ok(204, None),
    route(
        "post",
        "/v1/accounts/test",
        "Test a connection and list its folders",
    )
    .body("Connection")
    .ok(200, Some("TestResult")),
    route("post", "/v1/accounts", "Connect an account")
        .body("AccountCreate")
        .ok(201, Some("Account")),
    route(
        "get",
        "/v1/accounts",
        "Accounts the caller may see, primary first",
    )
    .paged("Account"),
    route("get", "/v1/accounts/{id}", "Get an account").ok(200, Some("Account")),
    route("patch", "/v1/accounts/{id}", "Change an account")
        .body("AccountPatch")
        .ok(200, Some("Account")),
    route(
        "delete",
        "/v1/accounts/{id}",
        "Delete an account with everything Mailroom holds for it",
    )
    .ok(204, None),
    route(
        "put",
        "/v1/accounts/{id}/primary",
        "Make the account the caller's primary",
    )
    .ok(200, Some("Account")),
    route(
        "delete",
        "/v1/accounts/{id}/primary",
        "Unset the caller's primary",
    )
    .ok(204, None),
    route(
        "post",
        "/v1/accounts/{id}/reconnect",
        "Re-test and re-enable an account",
    )
    .body("Reconnect")
    .ok(200, Some("Account")),
    route("get", "/v1/accounts/{id}/folders", "An account's folders").paged("AccountFolderCounts"),
    route(
        "post",
        "/v1/accounts/{id}/sync",
        "Ask for a sync of the account",
    )
    .ok(202, Some("SyncRequested")),
    route(
        "get",
        "/v1/accounts/{id}/messages",
        "An account's messages, newest first (folder, unread, q)",
    )
    .paged("Message"),
    route(
        "get",
        "/v1/messages/{id}",
        "A message with its bodies and attachments",
    )
    .ok(200, Some("MessageFull")),
    route(
        "get",
        "/v1/messages/{id}/raw",
        "A message's raw bytes (message/rfc822)",
    ),
    route(
        "get",
        "/v1/messages/{id}/attachments/{attachment_id}",
        "An attachment's contents",
    ),
    route(
        "patch",
        "/v1/messages/{id}",
        "Mark read, unread, starred (pushed to the server)",
    )
    .body("MessagePatch")
    .ok(200, Some("Message")),
    route(
        "post",
        "/v1/messages/{id}/move",
        "Move a message to another folder",
    )
    .body("MessageMove")
    .ok(200, Some("Message")),
    route(
        "delete",
        "/v1/messages/{id}",
        "Delete a message (to the trash; for good from the trash)",
    )
    .ok(204, None),
    route(
        "post",
        "/v1/accounts/{id}/send",
        "Send a message (with the caller's signature)",
    )
    .body("Send")
    .ok(202, Some("SendQueued")),
    route("get", "/v1/outbox/{id}", "How a send went").ok(200, Some("OutboxEntry")),
    route(
        "put",
        "/v1/records/{type}/{id}",
        "Create (201) or replace (200) a record: contacts, companies, deals",
    )
    .body("RecordPut")
    .ok(200, Some("Record")),
    route("get", "/v1/records/{type}/{id}", "Get a record").ok(200, Some("Record")),
    route(
        "delete",
        "/v1/records/{type}/{id}",
        "Delete a record and its filing",
    )
    .ok(204, None),
    route(
        "get",
        "/v1/records/{type}",
        "Records of a type (created_by)",
    )
    .paged("Record"),
    route(
        "get",
        "/v1/records/{type}/{id}/messages",
        "A record's messages across all accounts, newest first",
    )
    .paged("Message"),
    route(
        "get",
        "/v1/records/{type}/{id}/messages/{message_id}",
        "A message on a record's timeline",
    )
    .ok(200, Some("MessageFull")),
    route(
        "get",
        "/v1/records/{type}/{id}/messages/{message_id}/attachments/{attachment_id}",
        "An attachment of a message on a record's timeline",
    ),
    route("get", "/v1/events", "The event log (after, wait)").paged("Event"),
];

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
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if route.paged {
            parameters.push(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}));
            parameters.push(json!({"name": "cursor", "in": "query", "schema": {"type": "string"}}));
        }
        if route.auth {
            parameters.push(json!({"name": "X-Mailroom-User", "in": "header", "description": "For service tokens: the user to act as.", "schema": {"type": "string"}}));
        }
        if route.path == "/v1/accounts" && route.method == "post" {
            parameters.push(json!({"name": "Idempotency-Key", "in": "header", "description": "A retry with the same key within 24 h returns the first result.", "schema": {"type": "string", "maxLength": 255}}));
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
        let mut responses = serde_json::Map::new();
        responses.insert(status.to_string(), success);
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
            "operationId": format!("{} {}", route.method, route.path),
            "parameters": parameters,
            "responses": responses,
        });
        if route.auth {
            operation["security"] = json!([{"bearer": []}]);
        } else {
            operation["security"] = json!([]);
        }
        if let Some(body) = route.body {
            operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema_ref(body)}}});
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

fn schemas() -> Value {
    let string = json!({"type": "string"});
    let nullable_string = json!({"type": "string", "nullable": true});
    let server = json!({"type": "object", "required": ["host", "port", "encryption"], "properties": {
        "host": string, "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "encryption": {"type": "string", "enum": ["ssl", "starttls", "none"]}}});
    let role = json!({"type": "string", "nullable": true, "enum": ["inbox", "sent", "drafts", "trash", "spam", "archive", "all", null]});
    let connection = json!({
        "connector": string, "email": string, "password": string, "username": nullable_string,
        "imap": schema_ref("Server"), "smtp": schema_ref("Server"),
        "allow_insecure_certificate": {"type": "boolean"},
        "settings": {"type": "object", "additionalProperties": true},
    });
    let mut account_create = connection.clone();
    let create_extra = json!({
        "kind": {"type": "string", "enum": ["shared", "personal"]},
        "sync_from": {"type": "string", "enum": ["now", "1_month", "3_months", "6_months"]},
        "create_contact": {"type": "boolean"},
        "active_folders": {"type": "array", "items": string},
        "display_name": string,
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
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": string, "message": string, "field": string}}}},
        "Health": {"type": "object", "properties": {"status": string}},
        "Connector": {"type": "object", "properties": {
            "id": string, "name": string, "version": string, "wit_version": string,
            "auth": {"type": "string", "enum": ["password", "oauth2"]},
            "servers": {"type": "array", "items": string}, "builtin": {"type": "boolean"}, "digest": string}},
        "User": {"type": "object", "properties": user},
        "UserCreate": {"type": "object", "required": ["name", "email", "role"], "properties": {
            "name": string, "email": string, "role": {"type": "string", "enum": ["admin", "member"]},
            "shared_inbox": {"type": "boolean"}, "external_id": string}},
        "UserPatch": {"type": "object", "properties": {
            "name": string, "email": string, "role": {"type": "string", "enum": ["admin", "member"]},
            "shared_inbox": {"type": "boolean"}, "external_id": nullable_string,
            "disabled": {"type": "boolean"}}},
        "TokenInfo": {"type": "object", "properties": {"id": string, "name": string,
            "created_at": string, "last_used_at": nullable_string}},
        "Me": {"type": "object", "properties": me},
        "MePatch": {"type": "object", "properties": {"signature": nullable_string}},
        "TokenCreate": {"type": "object", "required": ["name"], "properties": {"name": string}},
        "NewToken": {"type": "object", "properties": {"id": string, "token": string, "name": string, "created_at": string}},
        "Server": server,
        "Connection": {"type": "object", "required": ["connector", "email", "password"], "properties": connection},
        "TestResult": {"type": "object", "required": ["ok"], "properties": {
            "ok": {"type": "boolean"},
            "folders": {"type": "array", "items": schema_ref("Folder")},
            "stage": string,
            "error": {"type": "object", "properties": {"code": string, "message": string}}}},
        "Folder": {"type": "object", "properties": {"id": string, "name": string, "role": role,
            "selectable": {"type": "boolean"}, "default_active": {"type": "boolean"}}},
        "AccountCreate": {"type": "object", "required": ["connector", "email", "password", "kind", "sync_from"], "properties": account_create},
        "AccountPatch": {"type": "object", "properties": {
            "display_name": nullable_string, "create_contact": {"type": "boolean"},
            "active_folders": {"type": "array", "items": string}, "enabled": {"type": "boolean"}}},
        "Reconnect": {"type": "object", "required": ["connector", "email", "password"], "properties": reconnect},
        "Account": {"type": "object", "properties": {
            "id": string, "kind": {"type": "string", "enum": ["shared", "personal"]}, "owner_id": string,
            "connector": string, "email": string, "display_name": nullable_string, "username": nullable_string,
            "sync_from": {"type": "string", "enum": ["now", "1_month", "3_months", "6_months"]},
            "sync_from_date": string, "create_contact": {"type": "boolean"}, "primary": {"type": "boolean"},
            "enabled": {"type": "boolean"},
            "state": {"type": "string", "enum": ["connecting", "syncing", "active", "auth_required", "error", "disabled"]},
            "state_reason": nullable_string, "state_since": string, "last_sync_at": nullable_string,
            "last_sync_duration_ms": {"type": "integer", "nullable": true},
            "imap": schema_ref("Server"), "smtp": schema_ref("Server"),
            "allow_insecure_certificate": {"type": "boolean"},
            "settings": {"type": "object", "additionalProperties": true},
            "folders": {"type": "array", "items": schema_ref("AccountFolder")},
            "created_at": string}},
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
        "RecordPut": {"type": "object", "required": ["name"], "properties": {"name": string,
            "emails": {"type": "array", "items": string}, "domains": {"type": "array", "items": string},
            "company_ids": {"type": "array", "items": string}, "contact_ids": {"type": "array", "items": string},
            "visible_to": {"type": "array", "nullable": true, "items": string}}},
        "Record": {"type": "object", "properties": {"type": {"type": "string", "enum": ["contacts", "companies", "deals"]},
            "id": string, "name": string, "emails": {"type": "array", "items": string},
            "domains": {"type": "array", "items": string}, "company_ids": {"type": "array", "items": string},
            "contact_ids": {"type": "array", "items": string},
            "created_by": {"type": "string", "enum": ["crm", "mailroom"]},
            "visible_to": {"type": "array", "nullable": true, "items": string}}},
        "MessagePatch": {"type": "object", "properties": {"seen": {"type": "boolean"}, "flagged": {"type": "boolean"}}},
        "MessageMove": {"type": "object", "required": ["folder_id"], "properties": {"folder_id": string}},
        "Recipient": {"type": "object", "required": ["email"], "properties": {"email": string, "name": string}},
        "Send": {"type": "object", "properties": {
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
            "active": {"type": "boolean"}, "unread": {"type": "integer"}, "total": {"type": "integer"}}},
    })
}
