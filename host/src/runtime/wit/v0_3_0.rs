//! `mailroom:connector@0.3.0`: a connector that also changes mail on the server and sends
//! (the exported `changes`), for the outbox. It introduced no host interface.

pub(super) use self::mailroom::connector0_3_0::changes;
use super::super::host::truncate;
use super::super::sandbox::JobState;
use super::v0_2_0::page_from_wit;
use crate::mail::work::SmtpReply;

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

super::work_calls!();

/// A server's reply as the connector reports it, its text cut to `max` bytes.
pub(super) fn reply(reply: changes::Reply, max: usize) -> SmtpReply {
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
