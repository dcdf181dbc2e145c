//! Folders of a mailbox, as Mailroom shows them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a folder is for. Serialised as docs/api.md names the roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FolderRole {
    Inbox,
    Sent,
    Drafts,
    Trash,
    Spam,
    Archive,
    All,
}

/// A folder on the server, as a connector listed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Folder {
    pub id: FolderId,
    /// The connector's name for the folder (for IMAP the raw mailbox name). Not shown.
    #[serde(skip)]
    pub path: String,
    pub name: String,
    pub role: Option<FolderRole>,
    pub selectable: bool,
    pub default_active: bool,
}

impl Folder {
    pub fn new(path: String, name: String, role: Option<FolderRole>, selectable: bool) -> Self {
        // Trash, spam and virtual "all mail" folders would flood the CRM with what the user
        // threw away or already has elsewhere; they are offered but not preselected.
        let default_active = selectable
            && !matches!(
                role,
                Some(FolderRole::Trash | FolderRole::Spam | FolderRole::All)
            );
        Self {
            id: FolderId::for_path(&path),
            path,
            name,
            role,
            selectable,
            default_active,
        }
    }
}

/// A folder's id: derived from the server's name for it alone, so the same mailbox has the
/// same id in a connection test, at account creation and after a re-connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FolderId(String);

impl FolderId {
    pub fn for_path(path: &str) -> Self {
        let digest = Sha256::digest(path.as_bytes());
        Self(format!("fld_{}", hex::encode(&digest[..10])))
    }

    /// An id read back from the store.
    pub fn from_stored(id: &str) -> Self {
        Self(id.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_ids_depend_only_on_the_server_name() {
        assert_eq!(FolderId::for_path("INBOX"), FolderId::for_path("INBOX"));
        assert_ne!(FolderId::for_path("INBOX"), FolderId::for_path("Sent"));
        assert!(FolderId::for_path("Sent").as_str().starts_with("fld_"));
    }

    #[test]
    fn trash_spam_and_all_mail_are_not_active_by_default() {
        let folder = |role| Folder::new("x".into(), "x".into(), role, true);
        assert!(folder(Some(FolderRole::Inbox)).default_active);
        assert!(folder(None).default_active);
        assert!(!folder(Some(FolderRole::Trash)).default_active);
        assert!(!folder(Some(FolderRole::Spam)).default_active);
        assert!(!folder(Some(FolderRole::All)).default_active);
        assert!(!Folder::new("x".into(), "x".into(), None, false).default_active);
    }
}
