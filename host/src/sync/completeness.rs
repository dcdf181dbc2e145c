//! Completeness: whether a folder holds what the server holds in its sync window.
//!
//! A connector may end a folder's sync with the server's count of the messages inside the
//! window. When the server counts more than Mailroom holds, the folder is first looked at
//! again (a change that landed between the sync and the count settles), then synced again
//! from the start (what the folder holds stays on view, and comes again where it is); mail still
//! missing after that is a gap the account reports (`server_total` beside the folder's
//! `total`, and the account's `state_reason`) until it heals. Holding more than the count is
//! no gap: Mailroom files where they went the messages its users move, which a count by date
//! may leave out.

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
pub fn judge(server: u64, held: u64, looks: u32, may_refetch: impl FnOnce() -> bool) -> Verdict {
    if server <= held {
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

/// The account's `state_reason` for the gaps among `counted`; none when there are none.
pub fn reason(counted: &[Counted]) -> Option<String> {
    let gaps: Vec<String> = counted
        .iter()
        .filter(|c| !c.complete())
        .map(|c| {
            format!(
                "folder {}: the server holds {} in the sync window and Mailroom {}",
                c.path,
                messages(c.server),
                c.held
            )
        })
        .collect();
    (!gaps.is_empty()).then(|| {
        format!(
            "Mail is missing even after fetching again ({}); checked again at every sync",
            gaps.join("; ")
        )
    })
}

fn messages(n: u64) -> String {
    if n == 1 {
        "1 message".to_owned()
    } else {
        format!("{n} messages")
    }
}

/// When each folder was last fetched again for a gap, across the jobs of every account: a
/// folder is fetched again at most once `every` (`[sync] gap_refetch_mins`).
#[derive(Clone)]
pub struct Refetches {
    last: Arc<Mutex<HashMap<(String, FolderId), Instant>>>,
    every: Duration,
}

impl Refetches {
    pub fn new(every: Duration) -> Self {
        Self {
            last: Arc::default(),
            every,
        }
    }

    /// Whether the account's folder may be fetched again now; if so, it counts as fetched.
    pub fn take(&self, account: &str, folder: &FolderId) -> bool {
        let mut last = self.last.lock().expect("refetches poisoned");
        let key = (account.to_owned(), folder.clone());
        if last.get(&key).is_some_and(|at| at.elapsed() < self.every) {
            return false;
        }
        last.insert(key, Instant::now());
        true
    }

    /// The folder is complete again: a later gap may be fetched again at once.
    pub fn forget(&self, account: &str, folder: &FolderId) {
        self.last
            .lock()
            .expect("refetches poisoned")
            .remove(&(account.to_owned(), folder.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_is_looked_at_again_then_fetched_again_then_reported() {
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
    fn a_folder_is_fetched_again_at_most_hourly_until_it_is_complete() {
        let refetches = Refetches::new(Duration::from_secs(3600));
        let inbox = FolderId::for_path("INBOX");
        assert!(refetches.take("a", &inbox));
        assert!(!refetches.take("a", &inbox));
        assert!(refetches.take("b", &inbox), "another account's folder");
        refetches.forget("a", &inbox);
        assert!(refetches.take("a", &inbox));
        let always = Refetches::new(Duration::ZERO);
        assert!(always.take("a", &inbox) && always.take("a", &inbox));
    }

    #[test]
    fn the_reason_names_each_folder_with_a_gap() {
        let counted = |path: &str, server, held| Counted {
            folder: FolderId::for_path(path),
            path: path.into(),
            server,
            held,
        };
        assert_eq!(reason(&[counted("INBOX", 3, 3)]), None);
        assert_eq!(
            reason(&[
                counted("INBOX", 10, 8),
                counted("Sent", 2, 2),
                counted("Deals", 1, 0)
            ])
            .as_deref(),
            Some(
                "Mail is missing even after fetching again (folder INBOX: the server holds 10 messages in the sync window and Mailroom 8; folder Deals: the server holds 1 message in the sync window and Mailroom 0); checked again at every sync"
            )
        );
    }
}
