//! Accounts and who may do what with them (docs/api.md, "Accounts"), against a real
//! Dovecot: create re-tests the connection, so every account here is real.

use mailroom_tests::mailroom::{ADMIN_TOKEN, Answer, Mailroom, SERVICE_TOKEN};
use mailroom_tests::servers::MailServers;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A user of the test, with the token they call with.
struct Actor {
    id: String,
    token: String,
}

struct Crm {
    servers: MailServers,
    mailroom: Mailroom,
    admin: Actor,
    /// A member with the shared-inbox permission.
    sharer: Actor,
    /// A member without it.
    member: Actor,
    /// A member who owns a personal account.
    owner: Actor,
}

impl Crm {
    async fn start() -> Self {
        let servers = MailServers::start();
        let ca = servers.cert_path().to_owned();
        let mailroom = Mailroom::start(|config| config.ca_file = Some(ca)).await;
        let me = mailroom.get("/v1/me").await;
        let admin = Actor {
            id: me.body["id"].as_str().expect("an id").to_owned(),
            token: ADMIN_TOKEN.to_owned(),
        };
        let mut crm = Self {
            servers,
            mailroom,
            admin,
            sharer: Actor {
                id: String::new(),
                token: String::new(),
            },
            member: Actor {
                id: String::new(),
                token: String::new(),
            },
            owner: Actor {
                id: String::new(),
                token: String::new(),
            },
        };
        crm.sharer = crm.user("Sam Sharer", true).await;
        crm.member = crm.user("Mo Member", false).await;
        crm.owner = crm.user("Olga Owner", false).await;
        crm
    }

    /// Creates a member; the CRM's service mints their first token acting as them.
    async fn user(&self, name: &str, shared_inbox: bool) -> Actor {
        let created = self
            .mailroom
            .post(
                "/v1/users",
                json!({"name": name, "email": format!("{}@crm.test", name.replace(' ', ".")), "role": "member", "shared_inbox": shared_inbox}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.body["id"].as_str().expect("an id").to_owned();
        let token = self
            .mailroom
            .call_as(
                SERVICE_TOKEN,
                Some(&id),
                Method::POST,
                "/v1/me/tokens",
                Some(json!({"name": "test"})),
            )
            .await;
        assert_eq!(token.status, StatusCode::CREATED, "{}", token.body);
        Actor {
            id,
            token: token.body["token"].as_str().expect("a token").to_owned(),
        }
    }

    fn connection(&self, local: &str) -> Value {
        let user = self.servers.user(local);
        json!({
            "connector": "imap",
            "email": user.email,
            "password": user.password,
            "imap": {"host": "localhost", "port": self.servers.imaps_port(), "encryption": "ssl"},
            "smtp": {"host": "localhost", "port": self.servers.smtps_port(), "encryption": "ssl"},
        })
    }

    fn create_body(&self, local: &str, kind: &str) -> Value {
        let mut body = self.connection(local);
        body["kind"] = json!(kind);
        body["sync_from"] = json!("3_months");
        body["create_contact"] = json!(true);
        body
    }

    async fn call(&self, actor: &Actor, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.mailroom
            .call_as(&actor.token, None, method, path, body)
            .await
    }
}

fn ids(answer: &Answer) -> Vec<String> {
    answer.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {}", answer.body))
        .iter()
        .map(|a| a["id"].as_str().expect("an id").to_owned())
        .collect()
}

fn status(answer: &Answer) -> StatusCode {
    answer.status
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_accounts_are_worked_by_the_shared_inbox_and_managed_by_admins() {
    let crm = Crm::start().await;

    // Only admins connect shared accounts.
    for actor in [&crm.sharer, &crm.member] {
        let refused = crm
            .call(
                actor,
                Method::POST,
                "/v1/accounts",
                Some(crm.create_body("bob", "shared")),
            )
            .await;
        assert_eq!(status(&refused), StatusCode::FORBIDDEN, "{}", refused.body);
    }
    let created = crm
        .call(
            &crm.admin,
            Method::POST,
            "/v1/accounts",
            Some(crm.create_body("bob", "shared")),
        )
        .await;
    assert_eq!(status(&created), StatusCode::CREATED, "{}", created.body);
    let shared = created.body["id"].as_str().expect("an id").to_owned();
    assert_eq!(created.body["kind"], "shared");
    assert_eq!(created.body["state"], "connecting");
    assert_eq!(created.body["sync_from"], "3_months");
    assert!(
        created.body["sync_from_date"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z'))
    );
    assert_eq!(created.body["imap"]["port"], crm.servers.imaps_port());
    assert!(created.body.get("password").is_none());
    let path = format!("/v1/accounts/{shared}");

    // Seen by admins and the shared inbox, by nobody else.
    for (actor, visible) in [
        (&crm.admin, true),
        (&crm.sharer, true),
        (&crm.member, false),
        (&crm.owner, false),
    ] {
        let list = crm.call(actor, Method::GET, "/v1/accounts", None).await;
        assert_eq!(ids(&list).contains(&shared), visible);
        let get = crm.call(actor, Method::GET, &path, None).await;
        let expected = if visible {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status(&get), expected, "{}", get.body);
    }

    // Managed by admins only; the shared inbox sees 403, everyone else 404.
    let patch = json!({"display_name": "Sales"});
    for (actor, expected) in [
        (&crm.sharer, StatusCode::FORBIDDEN),
        (&crm.member, StatusCode::NOT_FOUND),
    ] {
        assert_eq!(
            status(
                &crm.call(actor, Method::PATCH, &path, Some(patch.clone()))
                    .await
            ),
            expected
        );
        let reconnect = crm
            .call(
                actor,
                Method::POST,
                &format!("{path}/reconnect"),
                Some(crm.connection("bob")),
            )
            .await;
        assert_eq!(status(&reconnect), expected, "{}", reconnect.body);
        assert_eq!(
            status(&crm.call(actor, Method::DELETE, &path, None).await),
            expected
        );
    }
    let patched = crm
        .call(&crm.admin, Method::PATCH, &path, Some(patch))
        .await;
    assert_eq!(status(&patched), StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["display_name"], "Sales");
    let reconnected = crm
        .call(
            &crm.admin,
            Method::POST,
            &format!("{path}/reconnect"),
            Some(crm.connection("bob")),
        )
        .await;
    assert_eq!(status(&reconnected), StatusCode::OK, "{}", reconnected.body);
    assert_eq!(reconnected.body["id"], shared.as_str());

    // A primary is per caller, for accounts the caller may see.
    let primary = crm
        .call(&crm.sharer, Method::PUT, &format!("{path}/primary"), None)
        .await;
    assert_eq!(status(&primary), StatusCode::OK, "{}", primary.body);
    assert_eq!(primary.body["primary"], true);
    assert_eq!(
        crm.call(&crm.member, Method::PUT, &format!("{path}/primary"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let admin_view = crm.call(&crm.admin, Method::GET, &path, None).await;
    assert_eq!(admin_view.body["primary"], false);
    let me = crm.call(&crm.sharer, Method::GET, "/v1/me", None).await;
    assert_eq!(me.body["primary_account_id"], shared.as_str());

    // Losing the shared-inbox permission closes the account and clears the primary.
    let revoked = crm
        .mailroom
        .call(
            Method::PATCH,
            &format!("/v1/users/{}", crm.sharer.id),
            Some(json!({"shared_inbox": false})),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(
        crm.call(&crm.sharer, Method::GET, "/v1/me", None)
            .await
            .body["primary_account_id"],
        Value::Null
    );
    assert_eq!(
        crm.call(&crm.sharer, Method::GET, &path, None).await.status,
        StatusCode::NOT_FOUND
    );

    let deleted = crm.call(&crm.admin, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        crm.call(&crm.admin, Method::GET, &path, None).await.status,
        StatusCode::NOT_FOUND
    );
    crm.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_personal_account_is_its_owners_alone() {
    let crm = Crm::start().await;

    // The CRM's service connects it acting as the owner.
    let created = crm
        .mailroom
        .call_as(
            SERVICE_TOKEN,
            Some(&crm.owner.id),
            Method::POST,
            "/v1/accounts",
            Some(crm.create_body("alice", "personal")),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["owner_id"], crm.owner.id.as_str());
    let personal = created.body["id"].as_str().expect("an id").to_owned();
    let path = format!("/v1/accounts/{personal}");

    // Nobody else sees it: not the admin, not the shared inbox, not another member.
    for actor in [&crm.admin, &crm.sharer, &crm.member] {
        assert!(
            !ids(&crm.call(actor, Method::GET, "/v1/accounts", None).await).contains(&personal)
        );
        for (method, suffix, body) in [
            (Method::GET, "", None),
            (Method::PATCH, "", Some(json!({"display_name": "mine now"}))),
            (Method::PUT, "/primary", None),
            (Method::POST, "/reconnect", Some(crm.connection("alice"))),
            (Method::GET, "/folders", None),
            (Method::DELETE, "", None),
        ] {
            let answer = crm
                .call(actor, method.clone(), &format!("{path}{suffix}"), body)
                .await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{method} {suffix}: {}",
                answer.body
            );
            assert_eq!(answer.body["error"]["code"], "not_found");
        }
    }
    // The service acting as someone else does not see it either.
    let as_member = crm
        .mailroom
        .call_as(
            SERVICE_TOKEN,
            Some(&crm.member.id),
            Method::GET,
            &path,
            None,
        )
        .await;
    assert_eq!(as_member.status, StatusCode::NOT_FOUND);

    // The owner does everything, directly or through the service.
    assert_eq!(
        crm.call(&crm.owner, Method::GET, &path, None).await.status,
        StatusCode::OK
    );
    let via_service = crm
        .mailroom
        .call_as(SERVICE_TOKEN, Some(&crm.owner.id), Method::GET, &path, None)
        .await;
    assert_eq!(via_service.status, StatusCode::OK);
    let patched = crm
        .call(
            &crm.owner,
            Method::PATCH,
            &path,
            Some(json!({"create_contact": false, "enabled": false})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["state"], "disabled");
    assert_eq!(patched.body["enabled"], false);
    let reconnected = crm
        .call(
            &crm.owner,
            Method::POST,
            &format!("{path}/reconnect"),
            Some(crm.connection("alice")),
        )
        .await;
    assert_eq!(reconnected.status, StatusCode::OK, "{}", reconnected.body);
    assert_eq!(reconnected.body["enabled"], true);
    assert_eq!(reconnected.body["state"], "connecting");
    assert_eq!(
        crm.call(&crm.owner, Method::PUT, &format!("{path}/primary"), None)
            .await
            .status,
        StatusCode::OK
    );

    // A second account; the primary is listed first.
    let second = crm
        .call(
            &crm.owner,
            Method::POST,
            "/v1/accounts",
            Some(crm.create_body("carol", "personal")),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    let list = crm
        .call(&crm.owner, Method::GET, "/v1/accounts", None)
        .await;
    assert_eq!(ids(&list).first(), Some(&personal));
    assert_eq!(list.body["items"][0]["primary"], true);
    let unset = crm
        .call(&crm.owner, Method::DELETE, &format!("{path}/primary"), None)
        .await;
    assert_eq!(unset.status, StatusCode::NO_CONTENT);
    assert_eq!(
        crm.call(&crm.owner, Method::GET, "/v1/me", None).await.body["primary_account_id"],
        Value::Null
    );

    // Deleting the primary account clears the primary choice.
    crm.call(&crm.owner, Method::PUT, &format!("{path}/primary"), None)
        .await;
    assert_eq!(
        crm.call(&crm.owner, Method::DELETE, &path, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        crm.call(&crm.owner, Method::GET, "/v1/me", None).await.body["primary_account_id"],
        Value::Null
    );
    assert_eq!(
        crm.call(&crm.owner, Method::GET, &path, None).await.status,
        StatusCode::NOT_FOUND
    );
    crm.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn services_must_act_as_a_user_and_only_services_may() {
    let crm = Crm::start().await;
    let bare = crm
        .mailroom
        .call_as(SERVICE_TOKEN, None, Method::GET, "/v1/accounts", None)
        .await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN, "{}", bare.body);
    let impersonating = crm
        .mailroom
        .call_as(
            &crm.member.token,
            Some(&crm.admin.id),
            Method::GET,
            "/v1/accounts",
            None,
        )
        .await;
    assert_eq!(impersonating.status, StatusCode::FORBIDDEN);
    let nobody = crm
        .mailroom
        .call_as(
            SERVICE_TOKEN,
            Some("usr_nobody"),
            Method::GET,
            "/v1/me",
            None,
        )
        .await;
    assert_eq!(nobody.status, StatusCode::FORBIDDEN);
    crm.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_re_test_refuses_the_account_and_names_the_server() {
    let crm = Crm::start().await;
    let mut body = crm.create_body("alice", "personal");
    body["password"] = json!("wrong");
    let refused = crm
        .call(&crm.owner, Method::POST, "/v1/accounts", Some(body))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["error"]["code"], "auth_failed");
    assert_eq!(refused.body["error"]["field"], "imap");
    assert!(
        ids(&crm
            .call(&crm.owner, Method::GET, "/v1/accounts", None)
            .await)
        .is_empty()
    );
    crm.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn active_folders_are_chosen_at_creation_and_changed_later() {
    let crm = Crm::start().await;
    let test = crm
        .call(
            &crm.owner,
            Method::POST,
            "/v1/accounts/test",
            Some(crm.connection("alice")),
        )
        .await;
    let folder = |name: &str| {
        test.body["folders"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["name"] == name))
            .and_then(|f| f["id"].as_str())
            .expect("a folder")
            .to_owned()
    };
    let (inbox, sent, trash) = (folder("INBOX"), folder("Sent"), folder("Trash"));
    let mut body = crm.create_body("alice", "personal");
    body["active_folders"] = json!([inbox, sent]);
    let created = crm
        .call(&crm.owner, Method::POST, "/v1/accounts", Some(body.clone()))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("an id").to_owned();
    let active = |answer: &Answer| -> Vec<String> {
        let mut ids: Vec<String> = answer.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|f| f["active"] == true)
            .map(|f| f["id"].as_str().expect("an id").to_owned())
            .collect();
        ids.sort();
        ids
    };
    let folders = crm
        .call(
            &crm.owner,
            Method::GET,
            &format!("/v1/accounts/{id}/folders"),
            None,
        )
        .await;
    let mut expected = vec![inbox.clone(), sent.clone()];
    expected.sort();
    assert_eq!(active(&folders), expected);
    assert_eq!(folders.body["items"][0]["total"], 0);

    let changed = crm
        .call(
            &crm.owner,
            Method::PATCH,
            &format!("/v1/accounts/{id}"),
            Some(json!({"active_folders": [trash]})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let folders = crm
        .call(
            &crm.owner,
            Method::GET,
            &format!("/v1/accounts/{id}/folders"),
            None,
        )
        .await;
    assert_eq!(active(&folders), vec![trash]);

    body["active_folders"] = json!(["fld_not_a_folder"]);
    let refused = crm
        .call(&crm.owner, Method::POST, "/v1/accounts", Some(body))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["error"]["field"], "active_folders");
    crm.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_idempotency_key_creates_one_account() {
    let crm = Crm::start().await;
    let send = || {
        crm.mailroom
            .http()
            .post(crm.mailroom.url("/v1/accounts"))
            .bearer_auth(&crm.owner.token)
            .header("idempotency-key", "create-alice-1")
            .json(&crm.create_body("alice", "personal"))
    };
    let first = mailroom_tests::mailroom::answer(send()).await;
    let second = mailroom_tests::mailroom::answer(send()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(first.body["id"], second.body["id"]);
    assert_eq!(
        ids(&crm
            .call(&crm.owner, Method::GET, "/v1/accounts", None)
            .await)
        .len(),
        1
    );
    crm.mailroom.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_survives_a_restart_and_no_file_holds_the_password() {
    let crm = Crm::start().await;
    let created = crm
        .call(
            &crm.owner,
            Method::POST,
            "/v1/accounts",
            Some(crm.create_body("alice", "personal")),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("an id").to_owned();
    crm.call(
        &crm.owner,
        Method::PUT,
        &format!("/v1/accounts/{id}/primary"),
        None,
    )
    .await;
    let signature = crm
        .call(
            &crm.owner,
            Method::PATCH,
            "/v1/me",
            Some(json!({"signature": "<p>Olga</p>"})),
        )
        .await;
    assert_eq!(signature.status, StatusCode::OK, "{}", signature.body);

    let Crm {
        servers,
        mailroom,
        owner,
        ..
    } = crm;
    let mailroom = mailroom.restart().await;
    let account = mailroom
        .call_as(
            &owner.token,
            None,
            Method::GET,
            &format!("/v1/accounts/{id}"),
            None,
        )
        .await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert_eq!(account.body["primary"], true);
    assert_eq!(account.body["email"], created.body["email"]);
    assert_eq!(account.body["folders"], created.body["folders"]);
    let me = mailroom
        .call_as(&owner.token, None, Method::GET, "/v1/me", None)
        .await;
    assert_eq!(me.body["signature"], "<p>Olga</p>");
    assert_eq!(me.body["signature_text"], "Olga");

    // The stored password is sealed: no file in the data directory holds it.
    let password = servers.user("alice").password;
    let mut files = vec![mailroom.data_dir().to_owned()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("a readable directory") {
                files.push(entry.expect("an entry").path());
            }
        } else {
            let bytes = std::fs::read(&path).expect("a readable file");
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "{} holds the password",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
    mailroom.stop().await;
}
