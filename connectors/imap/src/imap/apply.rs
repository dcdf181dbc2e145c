//! What the host asks to change on the server: one message's flags, its move to another
//! folder or its removal (`apply`), and a new message in a folder (`append`).
//!
//! Every change names its message by UID and touches that message only: deletions use
//! `UID EXPUNGE` (UIDPLUS), never a plain `EXPUNGE`, which would also remove the messages
//! other clients marked `\Deleted`.

use super::reply::{Code, Reply};
use super::sync::contains;
use super::{Client, Next, quote};
use crate::error::{error, protocol};
use crate::mailroom::connector0_1_0::types::{Error, ErrorKind};
use crate::mailroom::connector0_2_0::mail::MessageFlags;
use crate::mailroom::connector0_3_0::changes::{Applied, Change, FlagUpdate, Target};
use crate::transport::{Transport, WRITE_CHUNK};

/// The largest literal `LITERAL-` lets a client send without waiting (RFC 7888).
const LITERAL_MINUS_MAX: usize = 4096;

impl<T: Transport> Client<T> {
    /// Applies `change` to the message `target` names. A message that is not in the folder
    /// (or an id that is no UID) is `gone`.
    pub fn apply(&mut self, target: &Target, change: &Change) -> Result<Applied, Error> {
        let Some(uid) = target.id.parse::<u32>().ok().filter(|&uid| uid > 0) else {
            return Ok(Applied::Gone);
        };
        self.select(&target.folder)?;
        match change {
            Change::SetFlags(update) => self.set_flags(uid, update),
            Change::MoveTo(path) => self.move_to(uid, path),
            Change::Expunge => {
                self.require_uidplus("delete")?;
                if !self.holds(uid)? {
                    return Ok(Applied::Gone);
                }
                self.remove(uid)?;
                Ok(Applied::Done(None))
            }
        }
    }

    /// Stores `raw` in `folder`; returns its UID there when the server says it (APPENDUID).
    pub fn append(
        &mut self,
        folder: &str,
        raw: &[u8],
        flags: MessageFlags,
    ) -> Result<Option<String>, Error> {
        let names: Vec<&str> = [
            (flags.seen, "\\Seen"),
            (flags.flagged, "\\Flagged"),
            (flags.answered, "\\Answered"),
            (flags.draft, "\\Draft"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        let flag_list = if names.is_empty() {
            String::new()
        } else {
            format!("({}) ", names.join(" "))
        };
        let len = raw.len();
        let at_once = self.has_capability("LITERAL+")
            || (len <= LITERAL_MINUS_MAX && self.has_capability("LITERAL-"));
        let plus = if at_once { "+" } else { "" };
        let tag = self.send(&format!(
            "APPEND {} {flag_list}{{{len}{plus}}}",
            quote(folder)?
        ))?;
        if !at_once {
            // A synchronizing literal: the server says whether it takes the message first.
            loop {
                match self.next_reply(&tag)? {
                    Next::Reply(Reply::Continue) => break,
                    Next::Reply(_) => {}
                    Next::Done(done) => {
                        done.ok("APPEND")?;
                        return Err(protocol(
                            "the server ended APPEND before taking the message",
                        ));
                    }
                }
            }
        }
        for part in raw.chunks(WRITE_CHUNK) {
            self.transport.write(part)?;
        }
        self.transport.write(b"\r\n")?;
        let done = self.complete(&tag, |_| {})?;
        let uid = match done.code {
            Some(Code::AppendUid(uid)) => Some(uid.to_string()),
            _ => None,
        };
        done.ok("APPEND")?;
        Ok(uid)
    }

    /// `UID STORE` without `.SILENT`: the untagged FETCH it answers with shows that the
    /// message exists.
    fn set_flags(&mut self, uid: u32, update: &FlagUpdate) -> Result<Applied, Error> {
        let (mut add, mut clear) = (Vec::new(), Vec::new());
        for (value, name) in [
            (update.seen, "\\Seen"),
            (update.flagged, "\\Flagged"),
            (update.answered, "\\Answered"),
        ] {
            match value {
                Some(true) => add.push(name),
                Some(false) => clear.push(name),
                None => {}
            }
        }
        let mut fetched = false;
        for (sign, names) in [('+', add), ('-', clear)] {
            if names.is_empty() {
                continue;
            }
            self.run_with(
                &format!("UID STORE {uid} {sign}FLAGS ({})", names.join(" ")),
                |reply| {
                    if let Reply::Fetch(fetch) = reply
                        && fetch.uid == Some(uid)
                    {
                        fetched = true;
                    }
                },
            )?
            .ok("UID STORE")?;
        }
        // Servers may leave out the FETCH when the flags were set already: ask before
        // calling the message gone.
        if fetched || self.holds(uid)? {
            Ok(Applied::Done(None))
        } else {
            Ok(Applied::Gone)
        }
    }

    /// `UID MOVE` (RFC 6851), or with UIDPLUS a copy and the removal of the original.
    fn move_to(&mut self, uid: u32, path: &str) -> Result<Applied, Error> {
        let destination = quote(path)?;
        if self.has_capability("MOVE") {
            // After a move the UID is gone from the folder whether or not it was there, so
            // ask first.
            if !self.holds(uid)? {
                return Ok(Applied::Gone);
            }
            // COPYUID comes in an untagged OK before the expunges, or in the tagged OK.
            let mut copy = None;
            let done = self.run_with(&format!("UID MOVE {uid} {destination}"), |reply| {
                if let Reply::Untagged {
                    code: Some(code), ..
                } = reply
                {
                    copy = copy.or(copy_of(&code, uid));
                }
            })?;
            let copy = copy.or_else(|| done.code.as_ref().and_then(|code| copy_of(code, uid)));
            done.ok("UID MOVE")?;
            return Ok(Applied::Done(copy.map(|uid| uid.to_string())));
        }
        self.require_uidplus("move")?;
        let done = self.run(&format!("UID COPY {uid} {destination}"))?;
        let copy = done.code.as_ref().and_then(|code| copy_of(code, uid));
        done.ok("UID COPY")?;
        if copy.is_none() && !self.holds(uid)? {
            return Ok(Applied::Gone);
        }
        self.remove(uid)?;
        Ok(Applied::Done(copy.map(|uid| uid.to_string())))
    }

    /// Marks the message `\Deleted` and expunges it alone.
    fn remove(&mut self, uid: u32) -> Result<(), Error> {
        self.run(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"))?
            .ok("UID STORE")?;
        self.run(&format!("UID EXPUNGE {uid}"))?.ok("UID EXPUNGE")
    }

    fn require_uidplus(&self, what: &str) -> Result<(), Error> {
        if self.has_capability("UIDPLUS") {
            return Ok(());
        }
        Err(error(
            ErrorKind::Unsupported,
            format!(
                "the server cannot {what} a single message (it has no UIDPLUS); \
                 Mailroom will not expunge other clients' deleted mail"
            ),
        ))
    }

    /// Whether the selected folder holds `uid`.
    fn holds(&mut self, uid: u32) -> Result<bool, Error> {
        Ok(contains(&self.search(&format!("UID {uid}"))?, uid))
    }
}

/// The UID a `COPYUID` code gives the copy of `uid`.
fn copy_of(code: &Code, uid: u32) -> Option<u32> {
    let Code::CopyUid { source, copies } = code else {
        return None;
    };
    let mut index = 0u64;
    let mut position = None;
    for &(first, last) in source {
        if (first..=last).contains(&uid) {
            position = Some(index + u64::from(uid - first));
            break;
        }
        index += u64::from(last - first) + 1;
    }
    let mut position = position?;
    for &(first, last) in copies {
        let len = u64::from(last - first) + 1;
        if position < len {
            return u32::try_from(position).ok().map(|offset| first + offset);
        }
        position -= len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::script::{Dialogue, Log};

    const SELECTED: &str = "* 3 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\nm1 OK [READ-WRITE] done\r\n";

    fn connected(capabilities: &[&str], replies: &[&'static str]) -> (Client<Dialogue>, Log) {
        crate::imap::scripted(capabilities, replies)
    }

    /// The command lines the client wrote.
    fn commands(log: &Log) -> Vec<String> {
        log.borrow()
            .iter()
            .filter_map(|entry| entry.strip_prefix("C: "))
            .map(|line| line.trim_end().to_owned())
            .collect()
    }

    fn target(id: &str) -> Target {
        Target {
            folder: "INBOX".into(),
            id: id.into(),
        }
    }

    fn flags(seen: Option<bool>, flagged: Option<bool>) -> Change {
        Change::SetFlags(FlagUpdate {
            seen,
            flagged,
            answered: None,
        })
    }

    #[test]
    fn flags_are_set_and_cleared_by_uid() {
        let (mut client, log) = connected(
            &[],
            &[
                SELECTED,
                "* 2 FETCH (UID 5 FLAGS (\\Seen \\Flagged))\r\nm2 OK done\r\n",
                "* 2 FETCH (UID 5 FLAGS (\\Seen))\r\nm3 OK done\r\n",
            ],
        );
        let applied = client
            .apply(&target("5"), &flags(Some(true), Some(false)))
            .unwrap();
        assert!(matches!(applied, Applied::Done(None)));
        assert_eq!(
            commands(&log),
            [
                "m1 SELECT \"INBOX\"",
                "m2 UID STORE 5 +FLAGS (\\Seen)",
                "m3 UID STORE 5 -FLAGS (\\Flagged)",
            ]
        );
    }

    #[test]
    fn flags_of_a_missing_uid_are_gone_once_a_search_agrees() {
        let (mut client, log) = connected(
            &[],
            &[SELECTED, "m2 OK done\r\n", "* SEARCH\r\nm3 OK done\r\n"],
        );
        let applied = client
            .apply(&target("5"), &flags(Some(true), None))
            .unwrap();
        assert!(matches!(applied, Applied::Gone));
        assert_eq!(commands(&log)[2], "m3 UID SEARCH UID 5");

        // A server that leaves out the FETCH for flags already set.
        let (mut client, _) = connected(
            &[],
            &[SELECTED, "m2 OK done\r\n", "* SEARCH 5\r\nm3 OK done\r\n"],
        );
        let applied = client
            .apply(&target("5"), &flags(Some(true), None))
            .unwrap();
        assert!(matches!(applied, Applied::Done(None)));
    }

    #[test]
    fn ids_that_are_no_uids_are_gone_without_a_word_to_the_server() {
        for id in ["", "0", "abc", "5 6", "99999999999"] {
            let (mut client, log) = connected(&["UIDPLUS"], &[]);
            let applied = client.apply(&target(id), &Change::Expunge).unwrap();
            assert!(matches!(applied, Applied::Gone), "{id:?}");
            assert!(log.borrow().is_empty());
        }
    }

    #[test]
    fn moves_take_the_new_uid_from_copyuid() {
        let (mut client, log) = connected(
            &["MOVE", "UIDPLUS"],
            &[
                SELECTED,
                "* SEARCH 5\r\nm2 OK done\r\n",
                "* OK [COPYUID 12 5 33] Moved\r\n* 2 EXPUNGE\r\nm3 OK Done\r\n",
            ],
        );
        let applied = client
            .apply(&target("5"), &Change::MoveTo("Archive".into()))
            .unwrap();
        assert!(matches!(applied, Applied::Done(Some(uid)) if uid == "33"));
        assert_eq!(commands(&log)[2], "m3 UID MOVE 5 \"Archive\"");

        // COPYUID in the tagged OK.
        let (mut client, _) = connected(
            &["MOVE", "UIDPLUS"],
            &[
                SELECTED,
                "* SEARCH 5\r\nm2 OK done\r\n",
                "* 2 EXPUNGE\r\nm3 OK [COPYUID 12 5 34] Done\r\n",
            ],
        );
        let applied = client
            .apply(&target("5"), &Change::MoveTo("Archive".into()))
            .unwrap();
        assert!(matches!(applied, Applied::Done(Some(uid)) if uid == "34"));

        // No COPYUID: no id is guessed.
        let (mut client, _) = connected(
            &["MOVE"],
            &[
                SELECTED,
                "* SEARCH 5\r\nm2 OK done\r\n",
                "* 2 EXPUNGE\r\nm3 OK Done\r\n",
            ],
        );
        let applied = client
            .apply(&target("5"), &Change::MoveTo("Archive".into()))
            .unwrap();
        assert!(matches!(applied, Applied::Done(None)));
    }

    #[test]
    fn a_missing_uid_is_not_moved() {
        let (mut client, log) = connected(&["MOVE"], &[SELECTED, "* SEARCH\r\nm2 OK done\r\n"]);
        let applied = client
            .apply(&target("5"), &Change::MoveTo("Archive".into()))
            .unwrap();
        assert!(matches!(applied, Applied::Gone));
        assert_eq!(commands(&log).len(), 2);

        let (mut client, log) = connected(
            &["UIDPLUS"],
            &[
                SELECTED,
                "m2 OK No messages\r\n",
                "* SEARCH\r\nm3 OK done\r\n",
            ],
        );
        let applied = client
            .apply(&target("5"), &Change::MoveTo("Archive".into()))
            .unwrap();
        assert!(matches!(applied, Applied::Gone));
        assert_eq!(
            commands(&log),
            [
                "m1 SELECT \"INBOX\"",
                "m2 UID COPY 5 \"Archive\"",
                "m3 UID SEARCH UID 5"
            ]
        );
    }

    #[test]
    fn without_move_a_move_is_a_copy_and_a_single_expunge() {
        let (mut client, log) = connected(
            &["UIDPLUS"],
            &[
                SELECTED,
                "m2 OK [COPYUID 12 5 33] Done\r\n",
                "m3 OK done\r\n",
                "* 2 EXPUNGE\r\nm4 OK done\r\n",
            ],
        );
        let applied = client
            .apply(&target("5"), &Change::MoveTo("Archive".into()))
            .unwrap();
        assert!(matches!(applied, Applied::Done(Some(uid)) if uid == "33"));
        assert_eq!(
            commands(&log),
            [
                "m1 SELECT \"INBOX\"",
                "m2 UID COPY 5 \"Archive\"",
                "m3 UID STORE 5 +FLAGS.SILENT (\\Deleted)",
                "m4 UID EXPUNGE 5",
            ]
        );

        let (mut client, _) = connected(&[], &[SELECTED]);
        let error = client
            .apply(&target("5"), &Change::MoveTo("Archive".into()))
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unsupported);
    }

    #[test]
    fn a_missing_destination_is_not_found() {
        let (mut client, _) = connected(
            &["MOVE"],
            &[
                SELECTED,
                "* SEARCH 5\r\nm2 OK done\r\n",
                "m3 NO [TRYCREATE] Mailbox doesn't exist: Nowhere\r\n",
            ],
        );
        let error = client
            .apply(&target("5"), &Change::MoveTo("Nowhere".into()))
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert!(error.message.contains("Mailbox doesn't exist: Nowhere"));

        let (mut client, _) = connected(
            &["MOVE"],
            &[
                SELECTED,
                "* SEARCH 5\r\nm2 OK done\r\n",
                "m3 NO Permission denied\r\n",
            ],
        );
        let error = client
            .apply(&target("5"), &Change::MoveTo("Shared".into()))
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Protocol);
        assert!(error.message.contains("Permission denied"));
    }

    #[test]
    fn expunges_remove_one_message_only() {
        let (mut client, log) = connected(
            &["UIDPLUS"],
            &[
                SELECTED,
                "* SEARCH 5\r\nm2 OK done\r\n",
                "m3 OK done\r\n",
                "* 2 EXPUNGE\r\nm4 OK done\r\n",
            ],
        );
        let applied = client.apply(&target("5"), &Change::Expunge).unwrap();
        assert!(matches!(applied, Applied::Done(None)));
        assert_eq!(
            commands(&log)[1..],
            [
                "m2 UID SEARCH UID 5",
                "m3 UID STORE 5 +FLAGS.SILENT (\\Deleted)",
                "m4 UID EXPUNGE 5",
            ]
        );

        let (mut client, _) = connected(&["UIDPLUS"], &[SELECTED, "* SEARCH\r\nm2 OK done\r\n"]);
        let applied = client.apply(&target("5"), &Change::Expunge).unwrap();
        assert!(matches!(applied, Applied::Gone));

        let (mut client, _) = connected(&[], &[SELECTED]);
        let error = client.apply(&target("5"), &Change::Expunge).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unsupported);
    }

    #[test]
    fn a_missing_folder_is_not_found() {
        let (mut client, _) = connected(&[], &["m1 NO [NONEXISTENT] Unknown Mailbox\r\n"]);
        let error = client.apply(&target("5"), &Change::Expunge).unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotFound);
    }

    fn all_flags() -> MessageFlags {
        MessageFlags {
            seen: true,
            flagged: false,
            answered: true,
            draft: false,
        }
    }

    #[test]
    fn appends_wait_for_the_continuation() {
        let (mut client, log) = connected(
            &[],
            &["+ Ready\r\n", "m1 OK [APPENDUID 12 17] APPEND done\r\n"],
        );
        let uid = client.append("Sent", b"hello", all_flags()).unwrap();
        assert_eq!(uid.as_deref(), Some("17"));
        assert_eq!(
            *log.borrow(),
            [
                "C: m1 APPEND \"Sent\" (\\Seen \\Answered) {5}\r\n",
                "S: + Ready\r\n",
                "C: hello",
                "C: \r\n",
                "S: m1 OK [APPENDUID 12 17] APPEND done\r\n",
            ]
        );
    }

    #[test]
    fn appends_send_at_once_with_non_synchronizing_literals() {
        let (mut client, log) = connected(&["LITERAL-"], &["m1 OK APPEND done\r\n"]);
        let no_flags = MessageFlags {
            seen: false,
            flagged: false,
            answered: false,
            draft: false,
        };
        let uid = client.append("Sent", b"hello", no_flags).unwrap();
        assert_eq!(uid, None);
        assert_eq!(
            *log.borrow(),
            [
                "C: m1 APPEND \"Sent\" {5+}\r\n",
                "C: hello",
                "C: \r\n",
                "S: m1 OK APPEND done\r\n",
            ]
        );

        // LITERAL- allows no more than 4096 bytes without waiting.
        let (mut client, log) = connected(&["LITERAL-"], &["+ go\r\n", "m1 OK done\r\n"]);
        client.append("Sent", &[b'x'; 5000], no_flags).unwrap();
        assert_eq!(log.borrow()[0], "C: m1 APPEND \"Sent\" {5000}\r\n");
    }

    #[test]
    fn a_refused_append_sends_no_message() {
        let (mut client, log) = connected(&[], &["m1 NO [TRYCREATE] No such mailbox\r\n"]);
        let error = client.append("Gone", b"hello", all_flags()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert_eq!(commands(&log).len(), 1);

        let (mut client, log) = connected(&[], &[]);
        let error = client.append("A\r\nB", b"hello", all_flags()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unsupported);
        assert!(log.borrow().is_empty());
    }

    #[test]
    fn copyuid_maps_each_source_uid_to_its_copy() {
        let code = Code::CopyUid {
            source: vec![(304, 304), (319, 320)],
            copies: vec![(3956, 3958)],
        };
        assert_eq!(copy_of(&code, 304), Some(3956));
        assert_eq!(copy_of(&code, 319), Some(3957));
        assert_eq!(copy_of(&code, 320), Some(3958));
        assert_eq!(copy_of(&code, 305), None);
        let split = Code::CopyUid {
            source: vec![(1, 4)],
            copies: vec![(10, 11), (20, 21)],
        };
        assert_eq!(copy_of(&split, 3), Some(20));
        // More source UIDs than copies: a broken code names no copy.
        let short = Code::CopyUid {
            source: vec![(1, 4)],
            copies: vec![(10, 11)],
        };
        assert_eq!(copy_of(&short, 4), None);
        assert_eq!(copy_of(&Code::AppendUid(3), 3), None);
    }
}
