//! The embedded store: one redb file, `mailroom.redb`, in the data directory, holding the
//! tables of the storage seam. The file's layout version lives in its `meta` table and is
//! migrated, step by step, when the file is opened.

use super::kv::Key;
use super::kv::redb::{RedbBackend, RedbWriter};
use super::kv_store::KvStore;
use super::{Result, StoreError, directory, filing};
use redb::{AccessGuard, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use std::path::Path;

use super::kv::redb::backend;

pub const FILE: &str = "mailroom.redb";

/// The layout this code writes. Bump it with a migration step in [`migrate`].
pub(super) const SCHEMA_VERSION: u64 = 7;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new(super::META_TABLE);

/// The store in one redb file.
pub type RedbStore = KvStore<RedbBackend>;

impl KvStore<RedbBackend> {
    /// Opens (or creates) the database in `data`, with `cache_bytes` of page cache.
    pub fn open(data: &Path, cache_bytes: usize) -> Result<Self> {
        Ok(Self::new(RedbBackend::open(
            &data.join(FILE),
            cache_bytes,
            |txn| {
                migrate(txn)?;
                // The file has one opener at a time: leases left in it by a process that
                // was killed are nobody's.
                super::leases::clear(&mut RedbWriter::new(txn))
            },
        )?))
    }
}

fn json(value: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

/// Brings a file up to [`SCHEMA_VERSION`]. A new file needs nothing: tables appear as
/// they are first written.
fn migrate(txn: &WriteTransaction) -> Result<()> {
    let mut meta = txn.open_table(META).map_err(backend)?;
    let found = match meta.get("schema_version").map_err(backend)? {
        Some(value) => {
            let bytes: [u8; 8] = value
                .value()
                .try_into()
                .map_err(|_| StoreError::Backend("the schema version is damaged".into()))?;
            u64::from_be_bytes(bytes)
        }
        None => 0,
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if (1..6).contains(&found) {
        let key_check = meta
            .remove("key_check")
            .map_err(backend)?
            .map(|v| v.value().to_vec());
        let mut seam = RedbWriter::new(txn);
        // Versions 1 to 5 kept typed tables; the seam's tables replace them (users, tokens
        // and accounts since version 5, everything since version 6).
        if found < 5 {
            directory_to_seam(txn, &mut seam, key_check)?;
        }
        if found >= 2 {
            mail_to_seam(txn, &mut seam)?;
        }
        if found >= 3 {
            outbox_to_seam(txn, &mut seam)?;
        }
        if found >= 4 {
            records_to_seam(txn, &mut seam)?;
        } else {
            // Version 4: the mail already held, filed under records.
            filing::file_all(&mut seam)?;
        }
    }
    if (1..7).contains(&found) {
        // Version 7: every uploaded connector's digest kept beside it.
        directory::digest_connectors(&mut RedbWriter::new(txn))?;
    }
    meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())
        .map_err(backend)?;
    Ok(())
}

/// Moves the typed table `name` into the seam's table of that name, entry by entry, with
/// `entry` giving each its key and value there (`None`: left behind). Streams: a table of
/// gigabytes of mail is never held in memory.
fn to_seam<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &WriteTransaction,
    seam: &mut RedbWriter<'_>,
    name: &'static str,
    mut entry: impl FnMut(AccessGuard<'_, K>, AccessGuard<'_, V>) -> Result<Option<(Key, Vec<u8>)>>,
) -> Result<()> {
    let old = format!("{name}.typed");
    txn.rename_table(
        TableDefinition::<K, V>::new(name),
        TableDefinition::<K, V>::new(&old),
    )
    .map_err(backend)?;
    {
        let table = txn
            .open_table(TableDefinition::<K, V>::new(&old))
            .map_err(backend)?;
        for item in table.iter().map_err(backend)? {
            let (key, value) = item.map_err(backend)?;
            if let Some((key, value)) = entry(key, value)? {
                super::kv::Writer::put(seam, name, key.as_bytes(), &value)?;
            }
        }
    }
    txn.delete_table(TableDefinition::<K, V>::new(&old))
        .map_err(backend)?;
    Ok(())
}

type Str = &'static str;
type Raw = &'static [u8];

/// Keys of one string, values kept as they are.
fn by_id(txn: &WriteTransaction, seam: &mut RedbWriter<'_>, name: &'static str) -> Result<()> {
    to_seam::<Str, Raw>(txn, seam, name, |k, v| {
        Ok(Some((Key::new().str(k.value()), v.value().to_vec())))
    })
}

/// Keys of two strings, no values.
fn pairs(txn: &WriteTransaction, seam: &mut RedbWriter<'_>, name: &'static str) -> Result<()> {
    to_seam::<(Str, Str), ()>(txn, seam, name, |k, _| {
        let (a, b) = k.value();
        Ok(Some((Key::new().str(a).str(b), Vec::new())))
    })
}

/// Users, tokens, accounts, secrets, primary choices, idempotent answers, the key check.
fn directory_to_seam(
    txn: &WriteTransaction,
    seam: &mut RedbWriter<'_>,
    key_check: Option<Vec<u8>>,
) -> Result<()> {
    for name in [
        "users",
        "accounts",
        "secrets",
        "idempotency",
        "token_hashes",
    ] {
        by_id(txn, seam, name)?;
    }
    for name in ["users_by_external_id", "primaries"] {
        to_seam::<Str, Str>(txn, seam, name, |k, v| {
            Ok(Some((Key::new().str(k.value()), json(&v.value())?)))
        })?;
    }
    to_seam::<Raw, Raw>(txn, seam, "tokens", |k, v| {
        Ok(Some((Key::new().bytes(k.value()), v.value().to_vec())))
    })?;
    if let Some(sealed) = key_check {
        super::kv::Writer::put(
            seam,
            "settings",
            Key::new().str("key_check").as_bytes(),
            &sealed,
        )?;
    }
    Ok(())
}

/// Messages, their bytes and places, folder progress and the event log.
fn mail_to_seam(txn: &WriteTransaction, seam: &mut RedbWriter<'_>) -> Result<()> {
    by_id(txn, seam, "messages")?;
    by_id(txn, seam, "bodies")?;
    to_seam::<(Str, Str, Str), Raw>(txn, seam, "provider_ids", |k, v| {
        let (account, folder, id) = k.value();
        let key = Key::new().str(account).str(folder).str(id);
        Ok(Some((key, v.value().to_vec())))
    })?;
    to_seam::<(Str, Str), Str>(txn, seam, "identities", |k, v| {
        let (account, identity) = k.value();
        let key = Key::new().str(account).str(identity);
        Ok(Some((key, v.value().as_bytes().to_vec())))
    })?;
    to_seam::<(Str, i64, Str), ()>(txn, seam, "timeline", |k, _| {
        let (account, at, id) = k.value();
        Ok(Some((Key::new().str(account).i64(at).str(id), Vec::new())))
    })?;
    to_seam::<(Str, Str), Raw>(txn, seam, "folder_syncs", |k, v| {
        let (account, folder) = k.value();
        Ok(Some((
            Key::new().str(account).str(folder),
            v.value().to_vec(),
        )))
    })?;
    pairs(txn, seam, "orphans")?;
    to_seam::<u64, Raw>(txn, seam, "events", |k, v| {
        Ok(Some((Key::new().u64(k.value()), v.value().to_vec())))
    })
}

/// The queues (whose numbering moves to `outbox_last`) and the sent messages.
fn outbox_to_seam(txn: &WriteTransaction, seam: &mut RedbWriter<'_>) -> Result<()> {
    let mut last = Vec::new();
    to_seam::<(Str, u64), Raw>(txn, seam, "outbox", |k, v| {
        let (account, seq) = k.value();
        if seq == 0 {
            let bytes: [u8; 8] = v
                .value()
                .try_into()
                .map_err(|_| StoreError::Backend("an outbox counter is damaged".into()))?;
            last.push((account.to_owned(), u64::from_be_bytes(bytes)));
            return Ok(None);
        }
        Ok(Some((Key::new().str(account).u64(seq), v.value().to_vec())))
    })?;
    for (account, seq) in last {
        let key = Key::new().str(&account);
        super::kv::Writer::put(seam, "outbox_last", key.as_bytes(), &json(&seq)?)?;
    }
    by_id(txn, seam, "outgoing")?;
    by_id(txn, seam, "outgoing_raw")
}

/// Records, their lookups, and the filing of mail under them.
fn records_to_seam(txn: &WriteTransaction, seam: &mut RedbWriter<'_>) -> Result<()> {
    to_seam::<(Str, Str), Raw>(txn, seam, "records", |k, v| {
        let (kind, id) = k.value();
        Ok(Some((Key::new().str(kind).str(id), v.value().to_vec())))
    })?;
    for name in [
        "contact_emails",
        "company_domains",
        "company_contacts",
        "addresses",
        "domains",
        "copies",
    ] {
        pairs(txn, seam, name)?;
    }
    for name in ["deal_members", "filing"] {
        to_seam::<(Str, Str, Str), ()>(txn, seam, name, |k, _| {
            let (a, b, c) = k.value();
            Ok(Some((Key::new().str(a).str(b).str(c), Vec::new())))
        })?;
    }
    to_seam::<(Str, Str, i64, Str), ()>(txn, seam, "filed", |k, _| {
        let (kind, id, at, message) = k.value();
        let key = Key::new().str(kind).str(id).i64(at).str(message);
        Ok(Some((key, Vec::new())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::FolderId;
    use crate::mail::message::Message;
    use crate::mail::parse::parse;
    use crate::mail::{Fetched, Flags};
    use crate::record::{Contact, CreatedBy, Record, RecordRef, RecordType};
    use crate::store::directory::tests::{a_token, a_user, an_account, sealed};
    use crate::store::mail::{FolderSync, MessageQuery};
    use crate::store::outbox::{Change, Duty};
    use crate::store::{MailStore, OutboxStore, RecordStore, Remembered, Store};
    use crate::user::{TokenHash, TokenOwner};

    fn message() -> Message {
        let raw = b"From: Ann <ann@client.test>\r\nTo: a@x.test\r\nSubject: terms\r\n\
Message-ID: <m1@client.test>\r\n\r\nHello\r\n";
        let fetched = Fetched {
            provider_id: "7".into(),
            flags: Flags::default(),
            received_at: 1_800_000_000,
            raw: raw.to_vec(),
            known: None,
        };
        parse(raw).into_message(
            "msg_1".into(),
            "acc_1",
            &FolderId::from_stored("inbox"),
            &fetched,
        )
    }

    /// A file as version 4 wrote it: every table typed, keys as tuples.
    fn version_4_file(path: &Path) {
        let db = redb::Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        fn put<K: redb::Key + 'static, V: redb::Value + 'static>(
            txn: &WriteTransaction,
            name: &str,
            key: K::SelfType<'_>,
            value: V::SelfType<'_>,
        ) {
            let mut table = txn.open_table(TableDefinition::<K, V>::new(name)).unwrap();
            table.insert(key, value).unwrap();
        }
        let bytes = |value: &dyn erased::Json| value.bytes();
        let hash = TokenHash::of("secret");
        put::<&str, &[u8]>(&txn, "meta", "schema_version", &4u64.to_be_bytes());
        put::<&str, &[u8]>(&txn, "meta", "key_check", &bytes(&sealed("check")));
        put::<&str, &[u8]>(
            &txn,
            "users",
            "usr_a",
            &bytes(&a_user("usr_a", Some("crm-1"))),
        );
        put::<&str, &str>(&txn, "users_by_external_id", "crm-1", "usr_a");
        put::<&str, &str>(&txn, "primaries", "usr_a", "acc_1");
        put::<&str, &[u8]>(
            &txn,
            "accounts",
            "acc_1",
            &bytes(&an_account("acc_1", "a@x.test")),
        );
        put::<&str, &[u8]>(&txn, "secrets", "acc_1", &bytes(&sealed("pw")));
        put::<&str, &[u8]>(&txn, "token_hashes", "tok_1", hash.as_bytes());
        let token = a_token("tok_1", TokenOwner::User("usr_a".into()));
        put::<&[u8], &[u8]>(&txn, "tokens", hash.as_bytes(), &bytes(&token));
        let remembered = Remembered {
            at_unix: 5,
            status: 201,
            body: serde_json::json!({}),
        };
        put::<&str, &[u8]>(&txn, "idempotency", "k1", &bytes(&remembered));

        let message = message();
        put::<&str, &[u8]>(&txn, "messages", "msg_1", &bytes(&message));
        put::<&str, &[u8]>(&txn, "bodies", "msg_1", b"raw bytes");
        put::<(&str, &str, &str), &[u8]>(
            &txn,
            "provider_ids",
            ("acc_1", "inbox", "7"),
            b"\x01msg_1",
        );
        put::<(&str, &str), &str>(&txn, "identities", ("acc_1", &message.identity), "msg_1");
        put::<(&str, i64, &str), ()>(&txn, "timeline", ("acc_1", 1_800_000_000, "msg_1"), ());
        let sync = FolderSync {
            state: Some(b"s".to_vec()),
            backfilled: true,
        };
        put::<(&str, &str), &[u8]>(&txn, "folder_syncs", ("acc_1", "inbox"), &bytes(&sync));
        let event = crate::store::mail::Event {
            seq: 41,
            kind: "message.created".into(),
            at: "2026-12-01T00:00:00Z".into(),
            data: serde_json::json!({}),
        };
        put::<u64, &[u8]>(&txn, "events", 41, &bytes(&event));
        put::<(&str, u64), &[u8]>(&txn, "outbox", ("acc_1", 0), &9u64.to_be_bytes());
        let duty = Duty::Send {
            outbox_id: "out_1".into(),
        };
        put::<(&str, u64), &[u8]>(&txn, "outbox", ("acc_1", 9), &bytes(&duty));
        put::<&str, &[u8]>(&txn, "outgoing_raw", "out_1", b"sent bytes");

        let contact = Record::Contact(Contact {
            id: "ann".into(),
            name: "Ann".into(),
            emails: vec!["ann@client.test".into()],
            company_ids: Vec::new(),
            created_by: CreatedBy::Crm,
            visible_to: None,
        });
        put::<(&str, &str), &[u8]>(&txn, "records", ("contacts", "ann"), &bytes(&contact));
        put::<(&str, &str), ()>(&txn, "contact_emails", ("ann@client.test", "ann"), ());
        put::<(&str, &str), ()>(&txn, "addresses", ("ann@client.test", "msg_1"), ());
        put::<(&str, &str), ()>(&txn, "domains", ("client.test", "msg_1"), ());
        put::<(&str, &str), ()>(&txn, "copies", (&message.identity, "msg_1"), ());
        put::<(&str, &str, i64, &str), ()>(
            &txn,
            "filed",
            ("contacts", "ann", 1_800_000_000, "msg_1"),
            (),
        );
        put::<(&str, &str, &str), ()>(&txn, "filing", ("msg_1", "contacts", "ann"), ());
        for empty in ["orphans", "company_domains", "company_contacts"] {
            txn.open_table(TableDefinition::<(&str, &str), ()>::new(empty))
                .unwrap();
        }
        txn.open_table(TableDefinition::<(&str, &str, &str), ()>::new(
            "deal_members",
        ))
        .unwrap();
        txn.open_table(TableDefinition::<&str, &[u8]>::new("outgoing"))
            .unwrap();
        txn.commit().unwrap();
    }

    /// Serializing whatever the test stores, as version 4 did (JSON).
    mod erased {
        pub trait Json {
            fn bytes(&self) -> Vec<u8>;
        }
        impl<T: serde::Serialize> Json for T {
            fn bytes(&self) -> Vec<u8> {
                serde_json::to_vec(self).unwrap()
            }
        }
    }

    #[tokio::test]
    async fn a_version_4_file_keeps_everything_it_held() {
        let dir = tempfile::tempdir().unwrap();
        version_4_file(&dir.path().join(FILE));
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();

        assert_eq!(
            store.user("usr_a").await.unwrap(),
            Some(a_user("usr_a", Some("crm-1")))
        );
        let found = store.token(&TokenHash::of("secret")).await.unwrap();
        assert_eq!(found.map(|t| t.id).as_deref(), Some("tok_1"));
        assert_eq!(
            store.account("acc_1").await.unwrap(),
            Some(an_account("acc_1", "a@x.test"))
        );
        assert_eq!(
            store.account_secret("acc_1").await.unwrap(),
            Some(sealed("pw"))
        );
        assert_eq!(
            store.primary("usr_a").await.unwrap().as_deref(),
            Some("acc_1")
        );
        assert_eq!(store.key_check().await.unwrap(), Some(sealed("check")));
        assert_eq!(store.remembered("k1").await.unwrap().unwrap().status, 201);
        // The external-id index came along: it still refuses a second owner.
        let taken = store.insert_user(a_user("usr_b", Some("crm-1"))).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");

        // Mail, its places and progress, the event log.
        let inbox = FolderId::from_stored("inbox");
        assert_eq!(store.message("msg_1").await.unwrap(), Some(message()));
        assert_eq!(
            store.raw_message("msg_1").await.unwrap().unwrap(),
            b"raw bytes"
        );
        let seen = Flags {
            seen: true,
            ..Flags::default()
        };
        assert_eq!(store.held("acc_1", &inbox).await.unwrap(), [(7, seen)]);
        let query = MessageQuery {
            limit: 10,
            ..MessageQuery::default()
        };
        let (listed, _) = store.messages("acc_1", query).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(store.folder_syncs("acc_1").await.unwrap()[&inbox].backfilled);
        let known = message();
        let probe = (known.message_id.clone().unwrap(), known.size);
        assert_eq!(store.known("acc_1", vec![probe]).await.unwrap(), [true]);
        assert_eq!(store.last_event_seq().await.unwrap(), 41);

        // The queue keeps its numbering: the next duty comes after the last one given.
        let next = store.next_duty("acc_1", 0).await.unwrap().unwrap();
        assert_eq!(next.seq, 9);
        assert_eq!(
            store.outgoing_raw("out_1").await.unwrap().unwrap(),
            b"sent bytes"
        );
        store
            .queue_change("msg_1", Change::Expunge)
            .await
            .unwrap()
            .unwrap();
        let after = store.next_duty("acc_1", 9).await.unwrap().unwrap();
        assert_eq!(after.seq, 10);

        // Records and filing.
        let ann = RecordRef {
            kind: RecordType::Contacts,
            id: "ann".into(),
        };
        assert!(store.record(&ann).await.unwrap().is_some());
        assert!(store.on_timeline(&ann, "msg_1").await.unwrap());
        let filed = store.message_records(&["msg_1".into()]).await.unwrap();
        assert_eq!(filed, [vec![ann.clone()]]);
        drop(store);

        // Opening again changes nothing.
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.users().await.unwrap().len(), 1);
        assert!(store.record(&ann).await.unwrap().is_some());
    }
    #[tokio::test]
    async fn a_version_6_file_gains_its_connectors_digests() {
        let dir = tempfile::tempdir().unwrap();
        let component = b"an uploaded component".to_vec();
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        store
            .put_connector("acme", component.clone(), "sha256:ignored")
            .await
            .unwrap();
        drop(store);
        // Version 6 kept no digests.
        {
            let db = redb::Database::open(dir.path().join(FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            let key = Key::new().str("acme");
            txn.open_table(crate::store::kv::redb::definition("connector_digests"))
                .unwrap()
                .remove(key.as_bytes())
                .unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema_version", 6u64.to_be_bytes().as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let digest = crate::connector::component_digest(&component);
        assert_eq!(
            store.connector_digests().await.unwrap(),
            [("acme".to_owned(), digest)]
        );
    }
}
