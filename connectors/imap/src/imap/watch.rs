//! Watching folders for news. Where the server offers NOTIFY (RFC 5465), one connection
//! watches every folder: the first (the inbox) is examined and reports new, removed and
//! changed messages; the others report new and removed ones as `STATUS` (servers tell no
//! flag change of a mailbox that is not selected: those wait for the next sync). Otherwise
//! IDLE (RFC 2177) watches the first folder alone. Either way the news arrives while the
//! connection idles, and the client waits for it in the host.

use super::reply::{Reply, Status};
use super::{Client, Next, quote};
use crate::error::{error, protocol};
use crate::mailroom::connector0_1_0::types::{Error, ErrorKind};
use crate::transport::Transport;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What is watched, and how.
pub struct Watching {
    pub folders: Vec<String>,
    pub method: &'static str,
}

impl<T: Transport> Client<T> {
    /// Starts watching `folders` (the first one is watched most closely); says which are
    /// watched and how.
    pub fn watch(&mut self, folders: &[String]) -> Result<Watching, Error> {
        let Some(first) = folders.first() else {
            return Err(error(ErrorKind::Unsupported, "no folder to watch"));
        };
        if !self.has_capability("IDLE") {
            return Err(error(
                ErrorKind::Unsupported,
                "The server does not offer IMAP IDLE; the account is checked for news",
            ));
        }
        // EXAMINE, not SELECT: watching must not change what it watches (\Recent).
        self.run(&format!("EXAMINE {}", quote(first)?))?
            .ok("EXAMINE")?;
        let notify = self.has_capability("NOTIFY") && self.notify(first, &folders[1..])?;
        self.watched = Some(first.clone());
        Ok(if notify {
            Watching {
                folders: folders.to_vec(),
                method: "IMAP NOTIFY",
            }
        } else {
            Watching {
                folders: vec![first.clone()],
                method: "IMAP IDLE",
            }
        })
    }

    /// Asks for news of the selected folder and of `others`; whether the server agreed.
    fn notify(&mut self, selected: &str, others: &[String]) -> Result<bool, Error> {
        let mut command = "NOTIFY SET (SELECTED (MessageNew MessageExpunge FlagChange))".to_owned();
        let others: Vec<String> = others
            .iter()
            .filter(|f| f.as_str() != selected)
            .map(|f| quote(f))
            .collect::<Result<_, _>>()?;
        if !others.is_empty() {
            command.push_str(&format!(
                " (MAILBOXES ({}) (MessageNew MessageExpunge))",
                others.join(" ")
            ));
        }
        let done = self.run(&command)?;
        Ok(matches!(done.status, Status::Ok))
    }

    /// Waits at most `timeout` for news; the folders that changed, none when the time passed
    /// quietly. The IDLE ends before this returns, so the next call starts a fresh one
    /// (servers end an IDLE after 30 minutes).
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<String>, Error> {
        let deadline = Instant::now() + timeout;
        let Some(selected) = self.watched.clone() else {
            return Err(error(ErrorKind::Unsupported, "the session watches nothing"));
        };
        let mut changed = BTreeSet::new();
        let tag = self.idle(&selected, &mut changed)?;
        while changed.is_empty() {
            if !self.reader.has_reply() {
                let left = deadline.saturating_duration_since(Instant::now());
                let millis = u32::try_from(left.as_millis()).unwrap_or(u32::MAX);
                if millis == 0 || !self.transport.readable(millis)? {
                    break;
                }
            }
            match self.next_reply(&tag)? {
                Next::Reply(reply) => news(reply, &selected, &mut changed),
                // The server ended the IDLE itself: the next wait starts another.
                Next::Done(done) => {
                    done.ok("IDLE")?;
                    return Ok(changed.into_iter().collect());
                }
            }
        }
        self.transport.write(b"DONE\r\n")?;
        self.complete(&tag, |reply| news(reply, &selected, &mut changed))?
            .ok("IDLE")?;
        Ok(changed.into_iter().collect())
    }

    /// Starts an IDLE; its tag. News that comes before the server agrees goes to `changed`.
    fn idle(&mut self, selected: &str, changed: &mut BTreeSet<String>) -> Result<String, Error> {
        let tag = self.send("IDLE")?;
        loop {
            match self.next_reply(&tag)? {
                Next::Reply(Reply::Continue) => return Ok(tag),
                Next::Reply(reply) => news(reply, selected, changed),
                Next::Done(done) => {
                    return Err(protocol(format!("IDLE refused: {}", done.text)));
                }
            }
        }
    }
}

/// Notes the folder a reply says changed, if it says one did.
fn news(reply: Reply, selected: &str, changed: &mut BTreeSet<String>) {
    match reply {
        Reply::Exists(_) | Reply::Expunge | Reply::Vanished(_) | Reply::Fetch(_) => {
            changed.insert(selected.to_owned());
        }
        Reply::Status(mailbox) => {
            changed.insert(mailbox);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::imap::scripted as connected;

    fn folders(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn notify_watches_every_folder_and_names_the_ones_that_changed() {
        let (mut client, log) = connected(
            &["IDLE", "NOTIFY"],
            &[
                "* 3 EXISTS\r\nm1 OK [READ-ONLY] done\r\n",
                "m2 OK NOTIFY completed\r\n",
                "+ idling\r\n",
                "* STATUS \"Sales\" (MESSAGES 4 UIDNEXT 9)\r\n",
                "m3 OK Idle completed\r\n",
            ],
        );
        let watching = client
            .watch(&folders(&["INBOX", "Sales"]))
            .expect("watching");
        assert_eq!(watching.method, "IMAP NOTIFY");
        assert_eq!(watching.folders.len(), 2);
        let changed = client.wait(Duration::from_secs(60)).expect("news");
        assert_eq!(changed, ["Sales"]);
        let log = log.borrow();
        assert_eq!(log[0], "C: m1 EXAMINE \"INBOX\"\r\n");
        assert_eq!(
            log[2],
            "C: m2 NOTIFY SET (SELECTED (MessageNew MessageExpunge FlagChange)) (MAILBOXES (\"Sales\") (MessageNew MessageExpunge))\r\n"
        );
        assert_eq!(log[4], "C: m3 IDLE\r\n");
        assert_eq!(log[7], "C: DONE\r\n");
    }

    #[test]
    fn idle_alone_watches_the_first_folder_and_a_quiet_wait_ends_its_idle() {
        let (mut client, log) = connected(
            &["IDLE"],
            &[
                "m1 OK [READ-ONLY] done\r\n",
                "+ idling\r\n",
                "* OK Still here\r\n",
                "",
                "m2 OK Idle completed\r\n",
                "+ idling\r\n",
                "* 2 FETCH (FLAGS (\\Seen))\r\n",
                "m3 OK Idle completed\r\n",
            ],
        );
        let watching = client
            .watch(&folders(&["INBOX", "Sent"]))
            .expect("watching");
        assert_eq!(watching.method, "IMAP IDLE");
        assert_eq!(watching.folders, ["INBOX"]);
        assert!(
            client
                .wait(Duration::from_secs(1))
                .expect("quiet")
                .is_empty()
        );
        assert_eq!(
            client.wait(Duration::from_secs(1)).expect("news"),
            ["INBOX"]
        );
        let writes: Vec<String> = log
            .borrow()
            .iter()
            .filter(|l| l.starts_with("C: "))
            .cloned()
            .collect();
        assert_eq!(
            writes,
            [
                "C: m1 EXAMINE \"INBOX\"\r\n",
                "C: m2 IDLE\r\n",
                "C: DONE\r\n",
                "C: m3 IDLE\r\n",
                "C: DONE\r\n"
            ]
        );
    }

    #[test]
    fn a_server_without_idle_cannot_be_watched_and_bye_or_a_refusal_ends_a_watch() {
        let (mut client, _) = connected(&["IMAP4rev1"], &[]);
        let refused = client.watch(&folders(&["INBOX"])).err().expect("no IDLE");
        assert_eq!(refused.kind, ErrorKind::Unsupported);

        let (mut client, _) = connected(
            &["IDLE"],
            &["m1 OK done\r\n", "+ idling\r\n", "* BYE shutting down\r\n"],
        );
        client.watch(&folders(&["INBOX"])).expect("watching");
        let ended = client.wait(Duration::from_secs(1)).expect_err("BYE");
        assert_eq!(ended.kind, ErrorKind::Connect);

        // An IDLE the server ends with a refusal is an error, not a quiet wait.
        let (mut client, _) = connected(
            &["IDLE"],
            &[
                "m1 OK done\r\n",
                "+ idling\r\n",
                "m2 NO [LIMIT] too many idlers\r\n",
            ],
        );
        client.watch(&folders(&["INBOX"])).expect("watching");
        let refused = client.wait(Duration::from_secs(1)).expect_err("NO");
        assert_eq!(refused.kind, ErrorKind::Protocol);
    }
}
