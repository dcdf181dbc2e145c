//! Mail as Mailroom holds it: what connectors fetch, parsed into messages, and the views the
//! API serves.
//!
//! The types at the top are what a sync page carries, in the host's own terms (the runtime
//! converts from each WIT version at its edge).

pub mod compose;
pub mod message;
pub mod parse;
pub mod render;
pub mod work;

use serde::{Deserialize, Serialize};

/// The flags Mailroom keeps for a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flags {
    pub seen: bool,
    pub flagged: bool,
    pub answered: bool,
    pub draft: bool,
}

/// Flags to set (`true`), clear (`false`) or leave alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagUpdate {
    pub seen: Option<bool>,
    pub flagged: Option<bool>,
    pub answered: Option<bool>,
}

impl FlagUpdate {
    pub fn applied_to(self, flags: Flags) -> Flags {
        Flags {
            seen: self.seen.unwrap_or(flags.seen),
            flagged: self.flagged.unwrap_or(flags.flagged),
            answered: self.answered.unwrap_or(flags.answered),
            draft: flags.draft,
        }
    }
}

/// A message as a connector fetched it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The provider's id within the folder (IMAP: the UID).
    pub provider_id: String,
    pub flags: Flags,
    /// When the server received it, seconds since the Unix epoch.
    pub received_at: i64,
    /// Empty when `known` is set.
    pub raw: Vec<u8>,
    /// Not fetched: the host said it holds the message already.
    pub known: Option<Known>,
}

/// How a connector names a message the host holds, instead of fetching it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// By its Message-ID and size (a message moved or copied from another folder).
    Probe { message_id: String, size: u64 },
    /// By its provider id, which names it in the whole mailbox (Gmail, Graph).
    ProviderId,
}

/// One step of a folder's sync, as a sync job reports it.
#[derive(Debug, Clone, Default)]
pub struct SyncPage {
    /// The server invalidated every id of the folder: forget them and sync it again.
    pub reset: bool,
    pub messages: Vec<Fetched>,
    pub changed: Vec<(String, Flags)>,
    pub removed: Vec<String>,
    /// The connector's opaque state for the folder after this page.
    pub state: Vec<u8>,
    /// The first sync of the folder is complete.
    pub backfilled: bool,
    /// The folder has more to sync now.
    pub more: bool,
    /// How many messages the server holds in the folder within the sync window, when the
    /// connector counted them (on the page that ends the folder's sync in a job).
    pub server_count: Option<u64>,
}

/// How much one page of a folder's sync may carry.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub max_messages: u32,
    pub max_bytes: u64,
}

/// Where a folder's first sync begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStart {
    /// Only mail arriving from now on.
    Now,
    /// Mail received at or after this Unix time.
    Since(i64),
}

/// A run of numeric provider ids held in a folder, all with the same flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldRange {
    pub first: u64,
    pub last: u64,
    pub flags: Flags,
}

/// Groups `(id, flags)` pairs, sorted by id, into runs of consecutive ids with equal flags.
pub fn held_ranges(sorted: impl IntoIterator<Item = (u64, Flags)>) -> Vec<HeldRange> {
    let mut ranges: Vec<HeldRange> = Vec::new();
    for (id, flags) in sorted {
        match ranges.last_mut() {
            Some(run) if run.last + 1 == id && run.flags == flags => run.last = id,
            _ => ranges.push(HeldRange {
                first: id,
                last: id,
                flags,
            }),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_break_on_gaps_and_flag_changes() {
        let seen = Flags {
            seen: true,
            ..Flags::default()
        };
        let none = Flags::default();
        let ranges = held_ranges([(1, seen), (2, seen), (3, none), (5, none), (6, none)]);
        assert_eq!(
            ranges,
            vec![
                HeldRange {
                    first: 1,
                    last: 2,
                    flags: seen
                },
                HeldRange {
                    first: 3,
                    last: 3,
                    flags: none
                },
                HeldRange {
                    first: 5,
                    last: 6,
                    flags: none
                },
            ]
        );
    }
}
