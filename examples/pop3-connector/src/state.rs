//! The folder's state: which UIDLs the host holds, and how far back the first sync has come.
//!
//! A maildrop lists messages in arrival order, so both fit in little room. The host keeps a
//! state of at most 64 KiB by default: only the newest held UIDLs that fit are kept, and
//! whatever the server lists before the oldest of them counts as held. A first sync goes
//! newest first and remembers the oldest message it has reached; what is listed before that
//! one is still to come.

use crate::fail;
use crate::mailroom::connector0_1_0::types::{Error, ErrorKind};
use crate::pop3::Entry;
use std::collections::HashSet;

/// The most bytes of UIDLs kept, below the host's 64 KiB.
const MAX_STATE_BYTES: usize = 60 * 1024;
const VERSION: &str = "pop3 2";

/// How far back the first sync has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backfill {
    /// Not begun: everything listed is still to come.
    Begun(Option<String>),
    /// Reached its start: nothing older is wanted.
    Done,
}

pub struct Known {
    uids: HashSet<String>,
    pub backfill: Backfill,
}

impl Known {
    /// Before the first sync.
    pub fn first() -> Self {
        Self {
            uids: HashSet::new(),
            backfill: Backfill::Begun(None),
        }
    }

    pub fn decode(state: &[u8]) -> Result<Self, Error> {
        let foreign = || {
            fail(
                ErrorKind::Protocol,
                "the folder's state is not this connector's",
            )
        };
        let text = std::str::from_utf8(state).map_err(|_| foreign())?;
        let mut lines = text.lines();
        let header = lines
            .next()
            .and_then(|h| h.strip_prefix(VERSION))
            .ok_or_else(foreign)?;
        let backfill = match header.trim() {
            "done" => Backfill::Done,
            "begun" => Backfill::Begun(None),
            below => match below.strip_prefix("below ") {
                Some(uid) => Backfill::Begun(Some(uid.to_owned())),
                None => return Err(foreign()),
            },
        };
        Ok(Self {
            uids: lines.map(str::to_owned).collect(),
            backfill,
        })
    }

    /// The state for the listing: the backfill's progress, and the held UIDLs in the
    /// server's order, the newest that fit.
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
        let mut state = match &self.backfill {
            Backfill::Done => format!("{VERSION} done"),
            Backfill::Begun(None) => format!("{VERSION} begun"),
            Backfill::Begun(Some(uid)) => format!("{VERSION} below {uid}"),
        };
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

    /// The listed messages still to fetch, oldest first: those that arrived after the oldest
    /// held one, and, while the first sync goes back, those listed before where it has come.
    pub fn new_in<'a>(&self, listing: &'a [Entry]) -> Vec<&'a Entry> {
        let held = |e: &&Entry| self.uids.contains(&e.uid);
        let floor = listing.iter().position(|e| held(&e)).unwrap_or(0);
        let below = match &self.backfill {
            Backfill::Done => 0,
            Backfill::Begun(None) => floor,
            Backfill::Begun(Some(uid)) => listing
                .iter()
                .position(|e| &e.uid == uid)
                .unwrap_or(floor)
                .min(floor),
        };
        listing[..below]
            .iter()
            .chain(&listing[floor..])
            .filter(|e| !held(e))
            .collect()
    }

    pub fn remember(&mut self, entry: &Entry, listing: &[Entry]) {
        self.uids.insert(entry.uid.clone());
        // The first sync has come back to here, unless it was further back already.
        if let Backfill::Begun(below) = &self.backfill {
            let position = |uid: &str| listing.iter().position(|e| e.uid == uid);
            let further = match below {
                None => true,
                Some(below) => position(&entry.uid) < position(below),
            };
            if further {
                self.backfill = Backfill::Begun(Some(entry.uid.clone()));
            }
        }
    }

    pub fn remember_all(&mut self, listing: &[Entry]) {
        self.uids.extend(listing.iter().map(|e| e.uid.clone()));
    }

    /// The first sync has reached its start at `entry`: it and everything listed before it
    /// count as held.
    pub fn start_reached(&mut self, listing: &[Entry], entry: &Entry) {
        for listed in listing {
            self.uids.insert(listed.uid.clone());
            if listed == entry {
                break;
            }
        }
        self.backfill = Backfill::Done;
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

    fn uids(entries: Vec<&Entry>) -> Vec<&str> {
        entries.iter().map(|e| e.uid.as_str()).collect()
    }

    #[test]
    fn a_first_sync_goes_back_page_by_page_and_new_mail_comes_first() {
        let server = listing(&["a", "b", "c", "d"]);
        let mut known = Known::first();
        assert_eq!(uids(known.new_in(&server)), ["a", "b", "c", "d"]);
        // One page took the newest two.
        known.remember(&server[3], &server);
        known.remember(&server[2], &server);
        let known = Known::decode(&known.encode(&server)).unwrap();
        assert_eq!(known.backfill, Backfill::Begun(Some("c".into())));
        assert_eq!(uids(known.new_in(&server)), ["a", "b"]);
        // Mail arrives meanwhile: it is new too.
        let server = listing(&["a", "b", "c", "d", "e"]);
        assert_eq!(uids(known.new_in(&server)), ["a", "b", "e"]);
    }

    #[test]
    fn after_the_first_sync_only_arrivals_are_new_and_removals_are_found() {
        let server = listing(&["a", "b", "c", "d"]);
        let mut known = Known::first();
        known.remember(&server[1], &server);
        known.uids.insert("z".into());
        known.backfill = Backfill::Done;
        // `a` precedes the oldest held message: taken as held.
        assert_eq!(uids(known.new_in(&server)), ["c", "d"]);
        assert_eq!(known.removed(&server), ["z"]);
        known.forget(&["z".to_owned()]);
        let state = known.encode(&server);
        assert_eq!(state, b"pop3 2 done\nb");
        assert!(Known::decode(b"imap state").is_err());
    }

    #[test]
    fn the_state_keeps_the_newest_uids_that_fit() {
        let names: Vec<String> = (0..10_000).map(|i| format!("{i:016x}")).collect();
        let server = listing(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let mut known = Known::first();
        known.remember_all(&server);
        known.backfill = Backfill::Done;
        let state = known.encode(&server);
        assert!(state.len() <= MAX_STATE_BYTES + 64);
        assert!(Known::decode(&state).unwrap().new_in(&server).is_empty());
    }
}
