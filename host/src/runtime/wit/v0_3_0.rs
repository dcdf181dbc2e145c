//! `mailroom:connector@0.3.0`: a connector that also changes mail on the server and sends
//! (the exported `changes`), for the outbox. It introduced no host interface.

use self::mailroom::connector0_3_0::changes;
use super::super::host::truncate;
use super::super::sandbox::JobState;
use super::v0_2_0::flags_to_wit;
use crate::connector::ConnectorError;
use crate::mail::work::{Delivery, SmtpReply, Work, WorkChange, WorkDone};
use wasmtime::Store;

wasmtime::component::bindgen!({
    world: "mailroom:connector/mail-connector@0.3.0",
    path: ["../wit/0.1.0", "../wit/0.2.0", "../wit/0.3.0"],
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "mailroom:connector/types@0.1.0": super::v0_1_0::mailroom::connector::types,
        "mailroom:connector/net@0.1.0": super::v0_1_0::mailroom::connector::net,
        "mailroom:connector/auth@0.1.0": super::v0_1_0::mailroom::connector::auth,
        "mailroom:connector/log@0.1.0": super::v0_1_0::mailroom::connector::log,
        "mailroom:connector/mail@0.2.0": super::v0_2_0::mailroom::connector0_2_0::mail,
    },
});

use self::exports::mailroom::connector0_3_0::connector as exported;

pub const VERSION: &str = "0.3.0";

pub type Pre = MailConnectorPre<JobState>;

super::common_calls!(mailroom_connector0_3_0_connector);
super::session_calls!(mailroom_connector0_3_0_connector);

impl Session<'_> {
    /// Does one piece of outbox work.
    pub async fn work(
        &self,
        store: &mut Store<JobState>,
        work: Work,
    ) -> wasmtime::Result<Result<WorkDone, ConnectorError>> {
        let (sessions, session) = (&self.sessions, self.session);
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
        text: truncate(reply.text, max),
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
