//! The folder's state: which UIDLs the host holds, oldest first, and whether the first sync
//! is still going back to its start date.
//!
//! The host keeps a state of at most 64 KiB by default, so only the newest UIDLs that fit are
//! kept. A maildrop lists messages in arrival order, so whatever the server lists before the
//! oldest kept UIDL is taken as held.

use crate::fail;
use crate::mailroom::connector0_1_0::types::{Error, ErrorKind};
use crate::pop3::Entry;
use std::collections::HashSet;

/// The most bytes of UIDLs kept, below the host's 64 KiB.
const MAX_STATE_BYTES: usize = 60 * 1024;
const HEADER_BACKFILLING: &str = "pop3 1 backfilling";
const HEADER_SYNCED: &str = "pop3 1 synced";

pub struct Known {
    uids: HashSet<String>,
    /// The first sync has not reached its start date yet.
    pub backfilling: bool,
}

impl Known {
    /// Before the first sync.
    pub fn first() -> Self {
        Self {
            uids: HashSet::new(),
            backfilling: true,
        }
    }

    pub fn decode(state: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(state).map_err(|_| {
            fail(
                ErrorKind::Protocol,
                "the folder's state is not this connector's",
            )
        })?;
        let mut lines = text.lines();
        let backfilling = match lines.next() {
            Some(HEADER_BACKFILLING) => true,
            Some(HEADER_SYNCED) => false,
            _ => {
                return Err(fail(
                    ErrorKind::Protocol,
                    "the folder's state is not this connector's",
                ));
            }
        };
        Ok(Self {
            uids: lines.map(str::to_owned).collect(),
            backfilling,
        })
    }

    /// The state for the listing: the held UIDLs in the server's order, the newest that fit.
    pub fn encode(&self, listing: &[Entry]) -> Vec<u8> {
        let mut kept = Vec::new();
        let mut bytes = 0;
        for entry in listing.iter().rev().filter(|e| self.uids.contains(&e.uid)) {
            bytes += entry.uid.len() + 1;
            if bytes > MAX_STATE_BYTES {
                break;
            }
            kept.push(entry.uid.as_str());
        }
        kept.reverse();
        let header = if self.backfilling {
            HEADER_BACKFILLING
        } else {
            HEADER_SYNCED
        };
        let mut state = String::with_capacity(bytes + header.len() + 1);
        state.push_str(header);
        for uid in kept {
            state.push('\n');
            state.push_str(uid);
        }
        state.into_bytes()
    }

    /// Held UIDLs the server no longer lists.
    pub fn removed(&self, listing: &[Entry]) -> Vec<String> {
        let listed: HashSet<&str> = listing.iter().map(|e| e.uid.as_str()).collect();
        let mut gone: Vec<String> = self
            .uids
            .iter()
            .filter(|uid| !listed.contains(uid.as_str()))
            .cloned()
            .collect();
        gone.sort();
        gone
    }

    pub fn forget(&mut self, uids: &[String]) {
        for uid in uids {
            self.uids.remove(uid);
        }
    }

    /// The listed messages the host does not hold, oldest first: those after the oldest held
    /// one that are not held themselves (everything when none is held).
    pub fn new_in<'a>(&self, listing: &'a [Entry]) -> Vec<&'a Entry> {
        let floor = listing
            .iter()
            .position(|e| self.uids.contains(&e.uid))
            .unwrap_or(0);
        listing[floor..]
            .iter()
            .filter(|e| !self.uids.contains(&e.uid))
            .collect()
    }

    pub fn remember(&mut self, uid: &str) {
        self.uids.insert(uid.to_owned());
    }

    pub fn remember_all(&mut self, listing: &[Entry]) {
        self.uids.extend(listing.iter().map(|e| e.uid.clone()));
    }

    /// Takes `entry` and everything listed before it as held.
    pub fn remember_up_to(&mut self, listing: &[Entry], entry: &Entry) {
        for listed in listing {
            self.uids.insert(listed.uid.clone());
            if listed == entry {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(uids: &[&str]) -> Vec<Entry> {
        uids.iter()
            .enumerate()
            .map(|(i, uid)| Entry {
                number: i as u32 + 1,
                uid: (*uid).to_owned(),
                size: 10,
            })
            .collect()
    }

    #[test]
    fn new_removed_and_the_state_round_trip() {
        let server = listing(&["a", "b", "c", "d"]);
        let mut known = Known::first();
        known.remember("b");
        known.remember("z");
        let new: Vec<&str> = known
            .new_in(&server)
            .iter()
            .map(|e| e.uid.as_str())
            .collect();
        // `a` precedes the oldest held message: taken as held.
        assert_eq!(new, ["c", "d"]);
        assert_eq!(known.removed(&server), ["z"]);
        known.forget(&["z".to_owned()]);
        known.backfilling = false;
        let state = known.encode(&server);
        assert_eq!(state, b"pop3 1 synced\nb");
        let again = Known::decode(&state).unwrap();
        assert!(!again.backfilling);
        assert_eq!(again.new_in(&server).len(), 2);
        assert!(Known::decode(b"imap state").is_err());
    }

    #[test]
    fn the_state_keeps_the_newest_uids_that_fit() {
        let uids: Vec<String> = (0..10_000).map(|i| format!("{i:016x}")).collect();
        let server = listing(&uids.iter().map(String::as_str).collect::<Vec<_>>());
        let mut known = Known::first();
        known.remember_all(&server);
        let state = known.encode(&server);
        assert!(state.len() <= MAX_STATE_BYTES + 64);
        let again = Known::decode(&state).unwrap();
        assert!(again.new_in(&server).is_empty());
    }
}
