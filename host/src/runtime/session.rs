//! A connector session of any version that can sync, and the outbox work it does, in the
//! host's own terms. Versions without an operation answer `unsupported`.

use super::bindings::v0_2_0::exports::mailroom::connector0_2_0::connector as v2;
use super::bindings::v0_2_0::mailroom::connector0_2_0::mail as wit;
use super::bindings::v0_3_0::exports::mailroom::connector0_3_0::connector as v3;
use super::bindings::v0_3_0::mailroom::connector0_3_0::changes;
use super::sandbox::JobState;
use super::sync::flags_to_wit;
use super::{Instance, folders_from_wit};
use crate::connector::{ConnectorError, ErrorKind};
use crate::folder::Folder;
use crate::mail::FlagUpdate;
use crate::mail::Flags;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

type Account = super::v1::mailroom::connector::types::Account;
type WitError = super::v1::mailroom::connector::types::Error;

/// Something the outbox asks the server to do.
#[derive(Debug, Clone)]
pub enum Work {
    /// Changes the message with `provider_id` in the folder at `folder` (its path).
    Apply {
        folder: String,
        provider_id: String,
        change: WorkChange,
    },
    /// Stores a message in the folder at `folder`.
    Append {
        folder: String,
        raw: Vec<u8>,
        flags: Flags,
    },
    /// Submits a message.
    Send {
        from: String,
        recipients: Vec<String>,
        raw: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub enum WorkChange {
    Flags(FlagUpdate),
    /// To the folder with this path.
    MoveTo(String),
    Expunge,
}

/// What came of a [`Work`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkDone {
    /// Applied; a move's new id in the target folder when the server said it.
    Applied(Option<String>),
    /// The message is not in that folder on the server any more.
    Gone,
    /// Stored, with its id when the server said it.
    Appended(Option<String>),
    Delivered(Delivery),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: u16,
    pub text: String,
}

/// The server's answers to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub recipients: Vec<(String, SmtpReply)>,
    /// The reply that refused the message before any recipient.
    pub refused: Option<SmtpReply>,
    /// The reply to the end of DATA; none when DATA was not sent.
    pub data: Option<SmtpReply>,
}

/// A session of a syncing connector.
pub(super) enum Session<'a> {
    V2(v2::GuestSession<'a>, ResourceAny),
    V3(v3::GuestSession<'a>, ResourceAny),
}

impl<'a> Session<'a> {
    /// Opens a session, or says why this connector's version cannot sync.
    pub(super) async fn open(
        store: &mut Store<JobState>,
        instance: &'a Instance,
        account: &Account,
    ) -> wasmtime::Result<Result<Self, ConnectorError>> {
        Ok(Ok(match instance {
            Instance::V1(_) => {
                return Ok(Err(ConnectorError::new(
                    ErrorKind::Unsupported,
                    "this connector was built for mailroom:connector@0.1.0, which cannot sync",
                )));
            }
            Instance::V2(instance) => {
                let sessions = instance.mailroom_connector0_2_0_connector().session();
                let session = sessions.call_constructor(&mut *store, account).await?;
                Session::V2(sessions, session)
            }
            Instance::V3(instance) => {
                let sessions = instance.mailroom_connector0_3_0_connector().session();
                let session = sessions.call_constructor(&mut *store, account).await?;
                Session::V3(sessions, session)
            }
        }))
    }

    pub(super) async fn close(self, store: &mut Store<JobState>) -> wasmtime::Result<()> {
        match self {
            Session::V2(_, session) | Session::V3(_, session) => {
                session.resource_drop_async(&mut *store).await
            }
        }
    }

    pub(super) async fn list_folders(
        &self,
        store: &mut Store<JobState>,
    ) -> wasmtime::Result<Result<Vec<Folder>, ConnectorError>> {
        let listed = match self {
            Session::V2(sessions, session) => {
                sessions.call_list_folders(&mut *store, *session).await?
            }
            Session::V3(sessions, session) => {
                sessions.call_list_folders(&mut *store, *session).await?
            }
        };
        Ok(listed
            .map_err(ConnectorError::from)
            .and_then(|folders| folders_from_wit(folders, &store.data().caps)))
    }

    pub(super) async fn sync_folder(
        &self,
        store: &mut Store<JobState>,
        request: &wit::SyncRequest,
    ) -> wasmtime::Result<Result<wit::Page, WitError>> {
        match self {
            Session::V2(sessions, session) => {
                sessions.call_sync_folder(store, *session, request).await
            }
            Session::V3(sessions, session) => {
                sessions.call_sync_folder(store, *session, request).await
            }
        }
    }

    /// Does one piece of outbox work.
    pub(super) async fn work(
        &self,
        store: &mut Store<JobState>,
        work: Work,
    ) -> wasmtime::Result<Result<WorkDone, ConnectorError>> {
        let Session::V3(sessions, session) = self else {
            return Ok(Err(ConnectorError::new(
                ErrorKind::Unsupported,
                "this connector was built for mailroom:connector@0.2.0, which cannot change mail on the server or send",
            )));
        };
        let session = *session;
        let max_reply = store.data().caps.max_reply_bytes;
        let reply = |r: changes::Reply| reply(r, max_reply);
        let done = match work {
            Work::Apply {
                folder,
                provider_id,
                change,
            } => {
                let target = changes::Target {
                    folder,
                    id: provider_id,
                };
                let change = match change {
                    WorkChange::Flags(update) => changes::Change::SetFlags(changes::FlagUpdate {
                        seen: update.seen,
                        flagged: update.flagged,
                        answered: update.answered,
                    }),
                    WorkChange::MoveTo(path) => changes::Change::MoveTo(path),
                    WorkChange::Expunge => changes::Change::Expunge,
                };
                sessions
                    .call_apply(store, session, &target, &change)
                    .await?
                    .map(|applied| match applied {
                        changes::Applied::Done(id) => WorkDone::Applied(id),
                        changes::Applied::Gone => WorkDone::Gone,
                    })
            }
            Work::Append { folder, raw, flags } => sessions
                .call_append(store, session, &folder, &raw, flags_to_wit(flags))
                .await?
                .map(WorkDone::Appended),
            Work::Send {
                from,
                recipients,
                raw,
            } => {
                let envelope = changes::Envelope { from, recipients };
                sessions
                    .call_send(store, session, &envelope, &raw)
                    .await?
                    .map(|delivery| {
                        WorkDone::Delivered(Delivery {
                            recipients: delivery
                                .recipients
                                .into_iter()
                                .map(|r| (r.address, reply(r.reply)))
                                .collect(),
                            refused: delivery.refused.map(reply),
                            data: delivery.data.map(reply),
                        })
                    })
            }
        };
        Ok(done.map_err(ConnectorError::from))
    }
}

/// A server's reply as the connector reports it, its text cut to `max` bytes.
fn reply(reply: changes::Reply, max: usize) -> SmtpReply {
    SmtpReply {
        code: reply.code,
        text: super::imports::truncate(reply.text, max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connector_cannot_store_a_reply_text_of_megabytes() {
        let text = format!("250 {}", "é".repeat(1 << 20));
        let stored = reply(changes::Reply { code: 250, text }, 1024);
        assert_eq!(stored.code, 250);
        assert!(stored.text.len() <= 1024 && stored.text.len() > 1000);
        assert!(stored.text.starts_with("250 é"));
    }
}
