//! Pushing an account's outbox through its connector, at the start of each sync job and
//! under the same per-account lock: duties in the order they were queued, each turned into
//! the connector's work and its outcome recorded in the store.
//!
//! A duty that fails for a while (the server is down, a 4xx) stays queued for a later job;
//! later changes of the same message wait behind it, other messages' go on (and sends wait
//! for the next job once the SMTP server could not be reached). One that can never succeed is
//! dropped with an event. A send is marked `sending` before it is handed to the server and
//! is never handed again after that: a job that finds a send still `sending` (the process
//! died during delivery) looks for its Message-ID in the mailbox instead.

use crate::account::Account;
use crate::connector::{ConnectorError, ErrorKind, Remedy};
use crate::folder::{FolderId, FolderRole};
use crate::mail::compose::without_bcc;
use crate::mail::parse::parse;
use crate::mail::work::{Delivery, SmtpReply, Work, WorkChange, WorkDone};
use crate::mail::{Fetched, FlagUpdate, Flags};
use crate::metrics::Metrics;
use crate::store::outbox::{
    Change, ChangeDone, Duty, OutboxEntry, Outgoing, RecipientReply, SendState,
};
use crate::store::{Store, StoreError};
use serde_json::json;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// How often a send refused with a temporary (4xx) reply is tried before it fails.
const SEND_ATTEMPTS: u32 = 10;

/// One job's pass over the outbox.
pub struct Pusher {
    store: Arc<dyn Store>,
    current: Option<Current>,
    /// Nothing more this job: the queue is done, or the server cannot be reached.
    finished: bool,
    /// The last duty looked at in this job: each is looked at once.
    after: u64,
    /// What waits for a later job: message ids whose earlier change is still queued, and
    /// [`SENDS`] once the SMTP server could not be reached.
    blocked: HashSet<String>,
    /// A duty waits for this job's sync to catch up and should be tried again right after.
    pub again: bool,
    /// The provider files sent mail in Sent itself: no copy is appended.
    files_sent: bool,
    metrics: Arc<Metrics>,
}

/// The duty being pushed.
struct Current {
    entry: OutboxEntry,
    plan: Plan,
    works: VecDeque<Work>,
    results: Vec<WorkDone>,
}

enum Plan {
    Flags,
    Move {
        from: FolderId,
        provider_id: String,
        to: FolderId,
    },
    Expunge(Vec<(FolderId, String)>),
    Send(Outgoing),
    Copy {
        folder: FolderId,
        raw: Vec<u8>,
    },
}

impl Pusher {
    pub fn new(store: Arc<dyn Store>, files_sent: bool, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
            current: None,
            finished: false,
            after: 0,
            blocked: HashSet::new(),
            again: false,
            files_sent,
        }
    }

    /// The next piece of work for the connector; none when the outbox is done for this job.
    pub async fn next_work(&mut self, account: &Account) -> Result<Option<Work>, StoreError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if let Some(current) = &mut self.current {
                if let Some(work) = current.works.pop_front() {
                    return Ok(Some(work));
                }
                let current = self.current.take().expect("checked above");
                self.finish(account, current).await?;
                continue;
            }
            let Some(entry) = self.store.next_duty(&account.id, self.after).await? else {
                self.finished = true;
                return Ok(None);
            };
            self.after = entry.seq;
            if self.blocked.contains(blocking_key(&entry.duty)) {
                continue;
            }
            self.current = self.prepare(account, entry).await?;
        }
    }

    /// Records what came of the work [`Pusher::next_work`] gave last. An error that concerns
    /// the whole account (a refused login) is returned, to end the job.
    pub async fn work_done(
        &mut self,
        account: &Account,
        done: Result<WorkDone, ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let Some(current) = &mut self.current else {
            return Ok(());
        };
        match done {
            Ok(done) => {
                current.results.push(done);
                if current.works.is_empty() {
                    let current = self.current.take().expect("checked above");
                    self.finish(account, current).await.map_err(store_error)?;
                }
                Ok(())
            }
            Err(error) => {
                let current = self.current.take().expect("checked above");
                self.failed(current, error).await
            }
        }
    }

    /// Turns a duty into work, or settles it at once when there is nothing to do.
    async fn prepare(
        &mut self,
        account: &Account,
        entry: OutboxEntry,
    ) -> Result<Option<Current>, StoreError> {
        let path = |folder: &FolderId| {
            account
                .folders
                .iter()
                .find(|f| &f.id == folder)
                .map(|f| f.path.clone())
        };
        let (plan, works) = match &entry.duty {
            Duty::Change {
                message_id, change, ..
            } => {
                let Some(message) = self.store.message(message_id).await? else {
                    // Deleted on the server meanwhile: the user's change did not happen.
                    self.store.drop_duty(&entry).await?;
                    self.store
                        .push_event(
                            "message.change_failed",
                            json!({"account_id": account.id, "message_id": message_id,
                                   "reason": "the message was deleted on the server"}),
                        )
                        .await?;
                    return Ok(None);
                };
                let held: Vec<(FolderId, String, String)> = message
                    .folders
                    .iter()
                    .filter_map(|m| {
                        Some((
                            m.folder_id.clone(),
                            m.provider_id.clone(),
                            path(&m.folder_id)?,
                        ))
                    })
                    .collect();
                match change {
                    Change::Flags(update) => {
                        let works = held
                            .into_iter()
                            .map(|(_, provider_id, folder)| Work::Apply {
                                folder,
                                provider_id,
                                change: WorkChange::Flags(*update),
                            })
                            .collect();
                        (Plan::Flags, works)
                    }
                    Change::Move { to } => {
                        let Some(to_path) = path(to) else {
                            self.store
                                .change_done(
                                    &entry,
                                    ChangeDone::Dropped {
                                        reason: "the folder no longer exists".into(),
                                    },
                                )
                                .await?;
                            return Ok(None);
                        };
                        let Some((from, provider_id, from_path)) =
                            held.into_iter().find(|(folder, _, _)| folder != to)
                        else {
                            self.store.change_done(&entry, ChangeDone::Applied).await?;
                            return Ok(None);
                        };
                        let work = Work::Apply {
                            folder: from_path,
                            provider_id: provider_id.clone(),
                            change: WorkChange::MoveTo(to_path),
                        };
                        let plan = Plan::Move {
                            from,
                            provider_id,
                            to: to.clone(),
                        };
                        (plan, vec![work])
                    }
                    Change::Expunge => {
                        let works = held
                            .iter()
                            .map(|(_, provider_id, folder)| Work::Apply {
                                folder: folder.clone(),
                                provider_id: provider_id.clone(),
                                change: WorkChange::Expunge,
                            })
                            .collect();
                        let targets = held.into_iter().map(|(f, p, _)| (f, p)).collect();
                        (Plan::Expunge(targets), works)
                    }
                }
            }
            Duty::Send { outbox_id } => {
                let (Some(mut outgoing), Some(raw)) = (
                    self.store.outgoing(outbox_id).await?,
                    self.store.outgoing_raw(outbox_id).await?,
                ) else {
                    self.store.drop_duty(&entry).await?;
                    return Ok(None);
                };
                match outgoing.state {
                    SendState::Queued => {}
                    SendState::Sending => {
                        self.recover(account, entry, outgoing).await?;
                        return Ok(None);
                    }
                    SendState::Sent | SendState::Failed => {
                        self.store.drop_duty(&entry).await?;
                        return Ok(None);
                    }
                }
                // From here on it may reach the recipients: never hand it over twice.
                outgoing.state = SendState::Sending;
                outgoing.attempts += 1;
                self.store
                    .save_outgoing(outgoing.clone(), None, Vec::new())
                    .await?;
                let work = Work::Send {
                    from: outgoing.envelope_from.clone(),
                    recipients: outgoing.envelope_to.clone(),
                    raw: without_bcc(&raw),
                };
                (Plan::Send(outgoing), vec![work])
            }
            Duty::CopyToSent { outbox_id } => {
                let sent = account
                    .folders
                    .iter()
                    .find(|f| f.role == Some(FolderRole::Sent) && f.selectable);
                let (Some(sent), Some(raw)) = (sent, self.store.outgoing_raw(outbox_id).await?)
                else {
                    self.store.drop_duty(&entry).await?;
                    return Ok(None);
                };
                let work = Work::Append {
                    folder: sent.path.clone(),
                    raw: raw.clone(),
                    flags: Flags {
                        seen: true,
                        ..Flags::default()
                    },
                };
                let plan = Plan::Copy {
                    folder: sent.id.clone(),
                    raw,
                };
                (plan, vec![work])
            }
        };
        if works.is_empty() {
            // Nothing of it is on the server (any more): the store alone settles it.
            let done = match plan {
                Plan::Expunge(_) => ChangeDone::Expunged(Vec::new()),
                _ => ChangeDone::Applied,
            };
            self.store.change_done(&entry, done).await?;
            return Ok(None);
        }
        Ok(Some(Current {
            entry,
            plan,
            works: works.into(),
            results: Vec::new(),
        }))
    }

    /// Records a duty whose work all succeeded.
    async fn finish(&mut self, account: &Account, current: Current) -> Result<(), StoreError> {
        let Current {
            entry,
            plan,
            results,
            ..
        } = current;
        let gone = || ChangeDone::Dropped {
            reason: "the message is no longer in that folder on the server".into(),
        };
        let all_gone = results.iter().all(|r| *r == WorkDone::Gone);
        if all_gone
            && matches!(plan, Plan::Flags | Plan::Move { .. })
            && matches!(entry.duty, Duty::Change { retried: false, .. })
        {
            // Another client may have moved it: once this job's sync has found where, the
            // change follows it. Nothing queued after it for this message goes first.
            self.blocked.insert(blocking_key(&entry.duty).to_owned());
            self.again = true;
            return self.store.defer_duty(&entry).await;
        }
        match plan {
            Plan::Flags => {
                let done = if all_gone {
                    gone()
                } else {
                    ChangeDone::Applied
                };
                self.store.change_done(&entry, done).await
            }
            Plan::Move {
                from,
                provider_id,
                to,
            } => {
                let done = match results.into_iter().next() {
                    Some(WorkDone::Applied(new_id)) => ChangeDone::Moved {
                        from,
                        provider_id,
                        to,
                        new_id,
                    },
                    _ => gone(),
                };
                self.store.change_done(&entry, done).await
            }
            // Expunged or already gone: either way no longer on the server.
            Plan::Expunge(targets) => {
                self.store
                    .change_done(&entry, ChangeDone::Expunged(targets))
                    .await
            }
            Plan::Send(outgoing) => match results.into_iter().next() {
                Some(WorkDone::Delivered(delivery)) => {
                    self.delivered(account, entry, outgoing, delivery).await
                }
                _ => {
                    self.requeue(outgoing, "the connector gave no delivery report")
                        .await
                }
            },
            Plan::Copy { folder, raw } => {
                let Duty::CopyToSent { outbox_id } = &entry.duty else {
                    return self.store.drop_duty(&entry).await;
                };
                let outbox_id = outbox_id.clone();
                let message_id = match results.into_iter().next() {
                    Some(WorkDone::Appended(Some(provider_id))) => {
                        let parsed = parse(&raw);
                        let fetched = Fetched {
                            provider_id,
                            flags: Flags {
                                seen: true,
                                ..Flags::default()
                            },
                            received_at: time::OffsetDateTime::now_utc().unix_timestamp(),
                            raw,
                            known: None,
                        };
                        Some(
                            self.store
                                .file_sent_copy(&entry, folder, fetched, parsed)
                                .await?,
                        )
                    }
                    // The server did not say where it put the copy: the next sync of Sent
                    // files it.
                    _ => {
                        self.store.drop_duty(&entry).await?;
                        None
                    }
                };
                self.sent_event(&account.id, &outbox_id, message_id).await
            }
        }
    }

    /// Records the server's answers to a send.
    async fn delivered(
        &mut self,
        account: &Account,
        entry: OutboxEntry,
        mut outgoing: Outgoing,
        delivery: Delivery,
    ) -> Result<(), StoreError> {
        outgoing.recipients = delivery
            .recipients
            .iter()
            .map(|(email, reply)| RecipientReply {
                email: email.clone(),
                accepted: matches!(reply.code, 250 | 251),
                reply: reply_text(reply),
            })
            .collect();
        let refusal = if let Some(refused) = &delivery.refused {
            Some(refused.clone())
        } else if !outgoing.recipients.iter().any(|r| r.accepted) {
            // Temporary only if every refusal was.
            let temporary = delivery.recipients.iter().all(|(_, r)| r.code / 100 == 4);
            let text = delivery
                .recipients
                .iter()
                .map(|(email, reply)| format!("{email}: {}", reply_text(reply)))
                .collect::<Vec<_>>()
                .join("; ");
            Some(SmtpReply {
                code: if temporary { 450 } else { 550 },
                text: format!("every recipient was refused ({text})"),
            })
        } else {
            match &delivery.data {
                Some(reply) if reply.code == 250 => None,
                Some(reply) => Some(reply.clone()),
                None => Some(SmtpReply {
                    code: 554,
                    text: "the server took no message".into(),
                }),
            }
        };
        match refusal {
            Some(reply) if reply.code / 100 == 4 && outgoing.attempts < SEND_ATTEMPTS => {
                self.requeue(outgoing, &reply_text(&reply)).await
            }
            Some(reply) => {
                self.metrics.send("failed");
                outgoing.state = SendState::Failed;
                outgoing.error = Some(reply_text(&reply));
                self.store
                    .save_outgoing(outgoing, Some(&entry), Vec::new())
                    .await
            }
            None => {
                self.metrics.send("sent");
                outgoing.state = SendState::Sent;
                outgoing.error = None;
                let has_sent = !self.files_sent
                    && account
                        .folders
                        .iter()
                        .any(|f| f.role == Some(FolderRole::Sent) && f.selectable);
                let then = if has_sent {
                    vec![Duty::CopyToSent {
                        outbox_id: outgoing.id.clone(),
                    }]
                } else {
                    Vec::new()
                };
                let (id, original) = (outgoing.id.clone(), outgoing.in_reply_to.clone());
                self.store
                    .save_outgoing(outgoing, Some(&entry), then)
                    .await?;
                if let Some(original) = original {
                    let answered = Change::Flags(FlagUpdate {
                        answered: Some(true),
                        ..FlagUpdate::default()
                    });
                    self.store.queue_change(&original, answered).await?;
                }
                if !has_sent {
                    self.sent_event(&account.id, &id, None).await?;
                }
                Ok(())
            }
        }
    }

    /// A send found `sending` at the start of a job: the process stopped during delivery.
    /// Handing it over again could deliver it twice, so it is `sent` if the mailbox holds
    /// it, and `failed` with an explanation otherwise.
    async fn recover(
        &mut self,
        account: &Account,
        entry: OutboxEntry,
        mut outgoing: Outgoing,
    ) -> Result<(), StoreError> {
        let found = self
            .store
            .find_message_id(&account.id, &outgoing.message_id)
            .await?;
        if found.is_some() {
            self.metrics.send("sent");
            outgoing.state = SendState::Sent;
            outgoing.sent_message_id = found;
        } else {
            self.metrics.send("failed");
            outgoing.state = SendState::Failed;
            outgoing.error = Some(
                "delivery was interrupted; the message was not sent again because the server may have accepted it"
                    .into(),
            );
        }
        self.store
            .save_outgoing(outgoing, Some(&entry), Vec::new())
            .await
    }

    /// Puts a send back in the queue for a later job.
    async fn requeue(&mut self, mut outgoing: Outgoing, reason: &str) -> Result<(), StoreError> {
        self.metrics.send("retry");
        outgoing.state = SendState::Queued;
        outgoing.error = Some(reason.to_owned());
        self.store.save_outgoing(outgoing, None, Vec::new()).await
    }

    async fn sent_event(
        &self,
        account_id: &str,
        outbox_id: &str,
        message_id: Option<String>,
    ) -> Result<(), StoreError> {
        self.store
            .push_event(
                "message.sent",
                json!({"account_id": account_id, "outbox_id": outbox_id, "message_id": message_id}),
            )
            .await
            .map(|_| ())
    }

    /// A piece of work failed.
    async fn failed(
        &mut self,
        current: Current,
        error: ConnectorError,
    ) -> Result<(), ConnectorError> {
        let Current { entry, plan, .. } = current;
        let remedy = error.kind.remedy();
        let whole_account = remedy == Remedy::Reconnect;
        let never = remedy == Remedy::GiveUp;
        let outcome = match plan {
            Plan::Send(mut outgoing) => {
                if error.kind.surely_undelivered() {
                    // The server could not be reached: the other sends wait too.
                    self.blocked.insert(SENDS.to_owned());
                    self.requeue(outgoing, &error.message).await
                } else {
                    self.metrics.send("failed");
                    outgoing.state = SendState::Failed;
                    outgoing.error = Some(if never {
                        error.message.clone()
                    } else {
                        format!(
                            "delivery was interrupted ({}); the message was not sent again because the server may have accepted it",
                            error.message
                        )
                    });
                    self.store
                        .save_outgoing(outgoing, Some(&entry), Vec::new())
                        .await
                }
            }
            Plan::Copy { .. } if never => self.store.drop_duty(&entry).await,
            Plan::Flags | Plan::Move { .. } | Plan::Expunge(_) if never => {
                self.store
                    .change_done(
                        &entry,
                        ChangeDone::Dropped {
                            reason: error.message.clone(),
                        },
                    )
                    .await
            }
            // Worth another try in a later job. When the server cannot be reached, nothing
            // else can be done now; otherwise later changes of this message wait behind it.
            _ => {
                if remedy == Remedy::Later {
                    self.finished = true;
                } else {
                    self.blocked.insert(blocking_key(&entry.duty).to_owned());
                }
                Ok(())
            }
        };
        outcome.map_err(store_error)?;
        if whole_account { Err(error) } else { Ok(()) }
    }
}

/// What a duty waits behind: its message's earlier changes, or earlier sends.
fn blocking_key(duty: &Duty) -> &str {
    match duty {
        Duty::Change { message_id, .. } => message_id,
        Duty::Send { .. } => SENDS,
        Duty::CopyToSent { outbox_id } => outbox_id,
    }
}

/// The key under which sends wait for the next job.
const SENDS: &str = "(sends)";

/// An SMTP reply as one line, code first.
fn reply_text(reply: &SmtpReply) -> String {
    let code = reply.code.to_string();
    if reply.text.starts_with(&code) {
        reply.text.clone()
    } else {
        format!("{code} {}", reply.text)
    }
}

fn store_error(error: StoreError) -> ConnectorError {
    ConnectorError::new(ErrorKind::Internal, format!("cannot store mail: {error}"))
}
