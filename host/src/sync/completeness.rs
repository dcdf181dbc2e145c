//! Completeness: whether a folder holds what the server holds in its sync window.
//!
//! A connector may end a folder's sync with the server's count of the messages inside the
//! window. When the server counts more than Mailroom holds, the folder is first looked at
//! again (a change that landed between the sync and the count settles), then synced again
//! from the start (what the folder holds stays on view, and comes again where it is); mail
//! still missing after that is a gap the account reports (`server_total` beside the folder's
//! `total`, and the account's `state_reason`) until it heals. Folders are counted now and
//! then (`[sync] count_every_mins`), and synced again at most once an hour
//! (`gap_refetch_mins`). Holding more than the count is no gap: Mailroom files where they
//! went the messages its users move, which a count by date may leave out.

use crate::folder::FolderId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What comes of comparing a folder's count with what Mailroom holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Mailroom holds all the server counts.
    Complete,
    /// Look at the folder again before believing it short.
    Recheck,
    /// Forget the folder's progress and fetch it again.
    Refetch,
    /// Mail is still missing: report it.
    Gap,
}

/// Judges a folder counted for the `looks`-th time in this job (from 1). `may_refetch` is
/// asked only when a refetch is what the difference calls for.
pub fn judge(counted: &Counted, looks: u32, may_refetch: impl FnOnce() -> bool) -> Verdict {
    if counted.complete() {
        Verdict::Complete
    } else if looks <= 1 {
        Verdict::Recheck
    } else if looks == 2 && may_refetch() {
        Verdict::Refetch
    } else {
        Verdict::Gap
    }
}

/// A folder counted by a job, as it stands at the end of its sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub folder: FolderId,
    pub path: String,
    pub server: u64,
    pub held: u64,
}

impl Counted {
    pub fn complete(&self) -> bool {
        self.server <= self.held
    }
}

/// The account's `state_reason` for the folders with a gap (by path); none when there are
/// none. It names the folders and nothing that moves with new mail (the counts are on the
/// folders), so it changes, and is announced, only when a folder's gap opens or heals.
pub fn reason(gaps: &[&str]) -> Option<String> {
    let (last, rest) = gaps.split_last()?;
    let folders = if rest.is_empty() {
        format!("folder {last}")
    } else {
        format!("folders {} and {last}", rest.join(", "))
    };
    Some(format!(
        "Mail the server holds is missing from {folders} even after syncing again; checked again at every sync"
    ))
}

/// When something was last done to each folder of each account (counted, synced again for a
/// gap), across the jobs of every account, so that it is done at most once `every`.
#[derive(Clone)]
pub struct Spacing {
    last: Arc<Mutex<HashMap<(String, FolderId), Instant>>>,
    every: Duration,
}

impl Spacing {
    pub fn new(every: Duration) -> Self {
        Self {
            last: Arc::default(),
            every,
        }
    }

    /// Whether the account's folder is due.
    pub fn due(&self, account: &str, folder: &FolderId) -> bool {
        let last = self.last.lock().expect("spacing poisoned");
        last.get(&(account.to_owned(), folder.clone()))
            .is_none_or(|at| at.elapsed() >= self.every)
    }

    /// It was done to the account's folder now.
    pub fn done(&self, account: &str, folder: &FolderId) {
        self.last
            .lock()
            .expect("spacing poisoned")
            .insert((account.to_owned(), folder.clone()), Instant::now());
    }

    /// Whether the account's folder is due; if so, it counts as done now.
    pub fn take(&self, account: &str, folder: &FolderId) -> bool {
        let due = self.due(account, folder);
        if due {
            self.done(account, folder);
        }
        due
    }

    /// Forgets the folder: it is due at once.
    pub fn forget(&self, account: &str, folder: &FolderId) {
        self.last
            .lock()
            .expect("spacing poisoned")
            .remove(&(account.to_owned(), folder.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_is_looked_at_again_then_fetched_again_then_reported() {
        let judge = |server, held, looks, may: fn() -> bool| {
            let counted = Counted {
                folder: FolderId::for_path("INBOX"),
                path: "INBOX".into(),
                server,
                held,
            };
            super::judge(&counted, looks, may)
        };
        assert_eq!(judge(5, 5, 1, || unreachable!()), Verdict::Complete);
        assert_eq!(judge(5, 4, 1, || unreachable!()), Verdict::Recheck);
        assert_eq!(judge(5, 4, 2, || true), Verdict::Refetch);
        assert_eq!(judge(5, 4, 2, || false), Verdict::Gap);
        assert_eq!(judge(5, 4, 3, || true), Verdict::Gap);
        // Mailroom holding more than the server counts is no gap.
        assert_eq!(judge(4, 5, 1, || unreachable!()), Verdict::Complete);
        assert_eq!(judge(4, 4, 3, || unreachable!()), Verdict::Complete);
    }

    #[test]
    fn a_folder_is_due_at_most_once_an_interval_until_forgotten() {
        let refetches = Spacing::new(Duration::from_secs(3600));
        let inbox = FolderId::for_path("INBOX");
        assert!(refetches.take("a", &inbox));
        assert!(!refetches.take("a", &inbox));
        assert!(refetches.take("b", &inbox), "another account's folder");
        refetches.forget("a", &inbox);
        assert!(refetches.due("a", &inbox) && refetches.due("a", &inbox));
        refetches.done("a", &inbox);
        assert!(!refetches.due("a", &inbox));
        let always = Spacing::new(Duration::ZERO);
        assert!(always.take("a", &inbox) && always.take("a", &inbox));
    }

    #[test]
    fn the_reason_names_each_folder_with_a_gap() {
        assert_eq!(reason(&[]), None);
        assert_eq!(
            reason(&["INBOX"]).as_deref(),
            Some(
                "Mail the server holds is missing from folder INBOX even after syncing again; checked again at every sync"
            )
        );
        assert_eq!(
            reason(&["INBOX", "Sent", "Deals"]).as_deref(),
            Some(
                "Mail the server holds is missing from folders INBOX, Sent and Deals even after syncing again; checked again at every sync"
            )
        );
    }
}
