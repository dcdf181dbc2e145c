//! A folder's sync state, the bytes the host keeps for the connector between pages and jobs.
//!
//! Compact JSON, version 1:
//!
//! * `v`: 1.
//! * `h`: the mailbox history id the folder's next change check starts from. The first sync
//!   takes it from `getProfile` before it lists anything, so that whatever changes while it
//!   runs is replayed by the first incremental sync ("Synchronizing clients with Gmail").
//! * `b`: present (`true`) once the first sync has reached its start.
//! * While the first sync runs: `l` (`true` once the first `messages.list` page was asked
//!   for), `n` (the token of the next list page, absent after the last) and `p` (the ids of
//!   the current list page not yet handed over, newest first).
//! * While an incremental sync is between pages: `o` (how many of the folder's touched
//!   messages are done) and `r` (the job-local id of the history read `o` counts in; a page
//!   of another job starts the list again).
//! * `w`: present (`true`) when the sync window covers the whole label: it held no message
//!   from before the window when the first sync ended, so every message it holds is one the
//!   host should hold.
//!
//! For example `{"v":1,"h":48213,"l":true,"n":"0987","p":["18c2…","18c1…"]}` during a first
//! sync and `{"v":1,"h":48391,"b":true}` between jobs.

use serde::{Deserialize, Serialize};

const VERSION: u8 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderState {
    #[serde(rename = "v")]
    version: u8,
    #[serde(rename = "h")]
    pub history_id: u64,
    #[serde(rename = "b", default, skip_serializing_if = "is_false")]
    pub backfilled: bool,
    #[serde(rename = "l", default, skip_serializing_if = "is_false")]
    pub listed: bool,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    #[serde(rename = "o", default, skip_serializing_if = "is_zero")]
    pub offset: u32,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    #[serde(rename = "w", default, skip_serializing_if = "is_false")]
    pub whole: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl FolderState {
    /// A first sync that starts now, from the mailbox's current history id.
    pub fn first(history_id: u64) -> Self {
        Self {
            version: VERSION,
            history_id,
            ..Self::default()
        }
    }

    /// A folder at rest: synced, its next check starting from `history_id`.
    pub fn synced(history_id: u64) -> Self {
        Self {
            backfilled: true,
            ..Self::first(history_id)
        }
    }

    /// An incremental sync between pages: `offset` of the touched messages of history
    /// reading `run` are done; the check still starts from `history_id`.
    pub fn paging(history_id: u64, offset: u32, run: u64) -> Self {
        Self {
            offset,
            run: Some(run),
            ..Self::synced(history_id)
        }
    }

    /// This state's knowledge of the label (`w`) carried over to `next`.
    pub fn keeping_whole(&self, next: Self) -> Self {
        Self {
            whole: self.whole,
            ..next
        }
    }

    /// Whether the first sync's listing is exhausted.
    pub fn listing_done(&self) -> bool {
        self.listed && self.next_page.is_none() && self.pending.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a folder state always serialises")
    }

    /// `None` for bytes this version did not write: the folder then syncs from the start.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|state| state.version == VERSION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_compactly() {
        let rest = FolderState::synced(48391);
        assert_eq!(rest.encode(), br#"{"v":1,"h":48391,"b":true}"#);
        assert_eq!(FolderState::decode(&rest.encode()), Some(rest));

        let listing = FolderState {
            listed: true,
            next_page: Some("0987".into()),
            pending: vec!["18c2".into(), "18c1".into()],
            ..FolderState::first(48213)
        };
        assert_eq!(
            listing.encode(),
            br#"{"v":1,"h":48213,"l":true,"n":"0987","p":["18c2","18c1"]}"#
        );
        assert_eq!(FolderState::decode(&listing.encode()), Some(listing));

        let paging = FolderState::paging(7, 500, u64::MAX);
        assert_eq!(
            paging.encode(),
            format!(r#"{{"v":1,"h":7,"b":true,"o":500,"r":{}}}"#, u64::MAX).into_bytes()
        );
        assert_eq!(FolderState::decode(&paging.encode()), Some(paging));

        let checked = FolderState {
            whole: true,
            ..FolderState::synced(9)
        };
        assert_eq!(checked.encode(), br#"{"v":1,"h":9,"b":true,"w":true}"#);
        assert_eq!(
            FolderState::decode(&checked.encode()),
            Some(checked.clone())
        );
        assert_eq!(
            checked.keeping_whole(FolderState::synced(10)),
            FolderState {
                history_id: 10,
                ..checked
            }
        );
    }

    #[test]
    fn foreign_bytes_are_refused() {
        assert_eq!(FolderState::decode(b""), None);
        assert_eq!(FolderState::decode(b"\x01\x02"), None);
        assert_eq!(FolderState::decode(br#"{"v":2,"h":1}"#), None);
        assert_eq!(FolderState::decode(br#"{"h":1}"#), None);
    }

    #[test]
    fn the_listing_is_done_after_its_last_page() {
        let mut state = FolderState::first(1);
        assert!(!state.listing_done());
        state.listed = true;
        state.next_page = Some("t".into());
        assert!(!state.listing_done());
        state.next_page = None;
        state.pending = vec!["a".into()];
        assert!(!state.listing_done());
        state.pending.clear();
        assert!(state.listing_done());
    }
}
