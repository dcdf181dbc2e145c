//! Filing mail under CRM records, measured on the store itself: the ingest cost per message
//! of a 100,000-message mailbox with 10,000 contacts against the same ingest with none, and
//! the time to file 1,000 earlier messages under a contact created afterwards.
//!
//! Results go to `bench/results/records.jsonl`, one JSON line per metric.

use mailroom::folder::FolderId;
use mailroom::mail::parse::parse;
use mailroom::mail::{Fetched, Flags};
use mailroom::record::{Contact, CreatedBy, Record, RecordRef, RecordType};
use mailroom::store::mail::{FolderSync, Incoming, PageWrite};
use mailroom::store::{MailStore, RecordStore, RedbStore};
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};

const MESSAGES: usize = 100_000;
const CONTACTS: usize = 10_000;
/// Distinct senders; every message names one of them and, for 1 in 100, `hot@…`.
const SENDERS: usize = 20_000;
const HOT_EVERY: usize = 100;
const PAGE: usize = 500;
const CACHE_BYTES: usize = 256 << 20;

fn message(i: usize) -> Vec<u8> {
    let sender = i % SENDERS;
    let cc = if i.is_multiple_of(HOT_EVERY) {
        "Cc: Hot <hot@prospect.test>\r\n"
    } else {
        ""
    };
    format!(
        "From: Sender {sender} <sender{sender}@company{}.test>\r\nTo: me@corp.test\r\n{cc}\
Subject: Offer {i}\r\nMessage-ID: <m{i}@bench.test>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\
Content-Type: text/plain\r\n\r\nHello, this is message {i}.\r\n",
        sender % 500
    )
    .into_bytes()
}

fn contact(id: String, email: String) -> Record {
    Record::Contact(Contact {
        id: id.clone(),
        name: id,
        emails: vec![email],
        company_ids: Vec::new(),
        created_by: CreatedBy::Crm,
        visible_to: None,
    })
}

/// Ingests the mailbox in pages (parsing outside the timing); returns the time spent in
/// the store.
async fn ingest(store: &RedbStore) -> Duration {
    let folder = FolderId::from_stored("inbox");
    let mut spent = Duration::ZERO;
    for start in (0..MESSAGES).step_by(PAGE) {
        let incoming = (start..(start + PAGE).min(MESSAGES))
            .map(|i| {
                let raw = message(i);
                Incoming {
                    parsed: Some(parse(&raw)),
                    fetched: Fetched {
                        provider_id: (i + 1).to_string(),
                        flags: Flags::default(),
                        received_at: 1_800_000_000 + i as i64,
                        raw,
                        known: None,
                    },
                }
            })
            .collect();
        let page = PageWrite {
            account_id: "acc_bench".into(),
            folder_id: folder.clone(),
            initial: true,
            incoming,
            changed: Vec::new(),
            removed: Vec::new(),
            sync: Some(FolderSync::default()),
        };
        let began = Instant::now();
        store.commit_page(page).await.expect("a page commits");
        spent += began.elapsed();
    }
    spent
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    std::fs::create_dir_all(&results).expect("the results directory");
    let mut out = std::fs::File::create(results.join("records.jsonl")).expect("a results file");
    let mut report = |line: serde_json::Value| {
        println!("{line}");
        writeln!(out, "{line}").expect("writing results");
    };

    let bare_dir = tempfile::tempdir().expect("a directory");
    let bare = RedbStore::open(bare_dir.path(), CACHE_BYTES).expect("a store");
    let without = ingest(&bare).await;
    drop(bare);

    let dir = tempfile::tempdir().expect("a directory");
    let store = RedbStore::open(dir.path(), CACHE_BYTES).expect("a store");
    for i in 0..CONTACTS {
        let record = contact(
            format!("c{i}"),
            format!("sender{i}@company{}.test", i % 500),
        );
        store.put_record(record).await.expect("a contact");
    }
    let with = ingest(&store).await;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / MESSAGES as f64;
    report(
        json!({"metric": "ingest_us_per_message", "contacts": 0, "messages": MESSAGES, "value": per(without)}),
    );
    report(
        json!({"metric": "ingest_us_per_message", "contacts": CONTACTS, "messages": MESSAGES, "value": per(with)}),
    );
    report(
        json!({"metric": "filing_overhead_us_per_message", "contacts": CONTACTS, "messages": MESSAGES, "value": per(with) - per(without)}),
    );

    let began = Instant::now();
    store
        .put_record(contact("hot".into(), "hot@prospect.test".into()))
        .await
        .expect("the new contact");
    let backfill = began.elapsed();
    let reference = RecordRef {
        kind: RecordType::Contacts,
        id: "hot".into(),
    };
    let (filed, more) = store
        .timeline(&reference, None, None, 2 * MESSAGES / HOT_EVERY)
        .await
        .expect("a timeline");
    assert_eq!((filed.len(), more), (MESSAGES / HOT_EVERY, false));
    report(
        json!({"metric": "new_contact_backfill_ms", "matching_messages": filed.len(), "messages": MESSAGES, "contacts": CONTACTS + 1, "value": backfill.as_secs_f64() * 1e3}),
    );
}
