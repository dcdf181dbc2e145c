//! Gmail labels as Mailroom folders and flags.
//!
//! Gmail has labels, not folders ("Manage labels" in the Gmail API guides): a message
//! carries any number of them. The system labels INBOX, SENT, DRAFT, SPAM and TRASH, and
//! every user label, are folders, named by the label's id (stable across renames). A message
//! in the trash or in spam is only there, whatever other labels it keeps: that is what Gmail
//! shows. CATEGORY_*, STARRED, IMPORTANT, UNREAD and CHAT are not folders; UNREAD and STARRED
//! become the seen and flagged flags.

use crate::mailroom::connector0_1_0::types::{Folder, FolderRole};
use crate::mailroom::connector0_2_0::mail::MessageFlags;

pub const INBOX: &str = "INBOX";
pub const SENT: &str = "SENT";
pub const DRAFT: &str = "DRAFT";
pub const SPAM: &str = "SPAM";
pub const TRASH: &str = "TRASH";
pub const UNREAD: &str = "UNREAD";
pub const STARRED: &str = "STARRED";

/// The system labels that are folders, in the order they are listed, with their role and
/// display name.
const SYSTEM_FOLDERS: [(&str, FolderRole, &str); 5] = [
    (INBOX, FolderRole::Inbox, "Inbox"),
    (SENT, FolderRole::Sent, "Sent"),
    (DRAFT, FolderRole::Drafts, "Drafts"),
    (SPAM, FolderRole::Spam, "Spam"),
    (TRASH, FolderRole::Trash, "Trash"),
];

/// A label as `labels.list` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelInfo {
    pub id: String,
    pub name: String,
    /// Gmail's `type`: `user` for the labels users make.
    pub user: bool,
}

/// The folders among the account's labels: the five system folders first, then the user
/// labels by name.
pub fn folders(labels: &[LabelInfo]) -> Vec<Folder> {
    let mut out: Vec<Folder> = SYSTEM_FOLDERS
        .iter()
        .filter(|(id, _, _)| labels.iter().any(|l| l.id == *id))
        .map(|&(id, role, name)| Folder {
            path: id.to_owned(),
            name: name.to_owned(),
            role: Some(role),
            selectable: true,
        })
        .collect();
    let mut user: Vec<&LabelInfo> = labels
        .iter()
        .filter(|l| l.user && !is_system_folder(&l.id))
        .collect();
    user.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    out.extend(user.into_iter().map(|l| Folder {
        path: l.id.clone(),
        name: l.name.clone(),
        role: None,
        selectable: true,
    }));
    out
}

fn is_system_folder(id: &str) -> bool {
    SYSTEM_FOLDERS.iter().any(|(system, _, _)| *system == id)
}

/// Whether a label is a folder, given the ids of the account's user labels.
pub fn is_folder(label: &str, user_labels: &[String]) -> bool {
    is_system_folder(label) || user_labels.iter().any(|l| l == label)
}

fn has(labels: &[String], label: &str) -> bool {
    labels.iter().any(|l| l == label)
}

/// Whether a message with these labels is in `folder`: only TRASH when it is trashed, only
/// SPAM when it is spam, else every folder among its labels.
pub fn in_folder(labels: &[String], folder: &str) -> bool {
    if has(labels, TRASH) {
        folder == TRASH
    } else if has(labels, SPAM) {
        folder == SPAM
    } else {
        has(labels, folder)
    }
}

/// The folders a message with these labels is in (see [`in_folder`]).
pub fn folders_of<'a>(labels: &'a [String], user_labels: &[String]) -> Vec<&'a str> {
    if has(labels, TRASH) {
        return vec![TRASH];
    }
    if has(labels, SPAM) {
        return vec![SPAM];
    }
    labels
        .iter()
        .map(String::as_str)
        .filter(|l| is_folder(l, user_labels))
        .collect()
}

/// Mailroom's flags from Gmail's labels. Gmail keeps no "answered" state.
pub fn flags(labels: &[String]) -> MessageFlags {
    MessageFlags {
        seen: !has(labels, UNREAD),
        flagged: has(labels, STARRED),
        answered: false,
        draft: has(labels, DRAFT),
    }
}

/// Whether listing a folder must ask Gmail to include spam and trash.
pub fn lists_spam_or_trash(folder: &str) -> bool {
    folder == SPAM || folder == TRASH
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn info(id: &str, name: &str, user: bool) -> LabelInfo {
        LabelInfo {
            id: id.into(),
            name: name.into(),
            user,
        }
    }

    #[test]
    fn system_and_user_labels_become_folders() {
        let all = [
            info("CATEGORY_SOCIAL", "CATEGORY_SOCIAL", false),
            info("Label_9", "Clients/Acme", true),
            info("TRASH", "TRASH", false),
            info("INBOX", "INBOX", false),
            info("STARRED", "STARRED", false),
            info("UNREAD", "UNREAD", false),
            info("IMPORTANT", "IMPORTANT", false),
            info("CHAT", "CHAT", false),
            info("SPAM", "SPAM", false),
            info("DRAFT", "DRAFT", false),
            info("SENT", "SENT", false),
            info("Label_2", "Archive 2020", true),
        ];
        let found: Vec<(String, String, Option<FolderRole>)> = folders(&all)
            .into_iter()
            .map(|f| (f.path, f.name, f.role))
            .collect();
        assert_eq!(
            found,
            vec![
                ("INBOX".into(), "Inbox".into(), Some(FolderRole::Inbox)),
                ("SENT".into(), "Sent".into(), Some(FolderRole::Sent)),
                ("DRAFT".into(), "Drafts".into(), Some(FolderRole::Drafts)),
                ("SPAM".into(), "Spam".into(), Some(FolderRole::Spam)),
                ("TRASH".into(), "Trash".into(), Some(FolderRole::Trash)),
                ("Label_2".into(), "Archive 2020".into(), None),
                ("Label_9".into(), "Clients/Acme".into(), None),
            ]
        );
    }

    #[test]
    fn trash_and_spam_hide_every_other_folder() {
        let user = labels(&["Label_1"]);
        let plain = labels(&["INBOX", "Label_1", "UNREAD", "CATEGORY_UPDATES"]);
        assert!(in_folder(&plain, "INBOX") && in_folder(&plain, "Label_1"));
        assert!(!in_folder(&plain, "TRASH") && !in_folder(&plain, "SENT"));
        assert_eq!(folders_of(&plain, &user), vec!["INBOX", "Label_1"]);

        let trashed = labels(&["TRASH", "Label_1", "SPAM"]);
        assert!(in_folder(&trashed, "TRASH"));
        assert!(!in_folder(&trashed, "Label_1") && !in_folder(&trashed, "SPAM"));
        assert_eq!(folders_of(&trashed, &user), vec!["TRASH"]);

        let spam = labels(&["SPAM", "INBOX"]);
        assert!(in_folder(&spam, "SPAM") && !in_folder(&spam, "INBOX"));
        assert_eq!(folders_of(&spam, &user), vec!["SPAM"]);

        assert!(folders_of(&labels(&["IMPORTANT"]), &user).is_empty());
    }

    #[test]
    fn flags_follow_labels() {
        let f = flags(&labels(&["INBOX", "UNREAD"]));
        assert!(!f.seen && !f.flagged && !f.answered && !f.draft);
        let f = flags(&labels(&["STARRED", "DRAFT"]));
        assert!(f.seen && f.flagged && !f.answered && f.draft);
    }
}
