//! Mail folders as Mailroom's folders: the Graph folder id is the path (it survives a
//! rename), the display names from the top joined with `/` are the name, and the well-known
//! folders give the roles. Hidden folders, the Outbox and Sync Issues (with what they hold)
//! are not listed: they hold nothing a person filed.

use crate::graph::MailFolder;
use crate::mailroom::connector0_1_0::types::{Folder, FolderRole};
use std::collections::HashMap;

/// The well-known names asked for, and the role each gives.
pub const WELL_KNOWN: [(&str, Option<FolderRole>); 8] = [
    ("inbox", Some(FolderRole::Inbox)),
    ("sentitems", Some(FolderRole::Sent)),
    ("drafts", Some(FolderRole::Drafts)),
    ("deleteditems", Some(FolderRole::Trash)),
    ("junkemail", Some(FolderRole::Spam)),
    ("archive", Some(FolderRole::Archive)),
    ("outbox", None),
    ("syncissues", None),
];

/// The account's folders, in Graph's order with each parent before its children.
/// `well_known` holds the ids of [`WELL_KNOWN`]'s folders, in that order.
pub fn folders(all: &[MailFolder], well_known: &[Option<String>]) -> Vec<Folder> {
    let by_id: HashMap<&str, &MailFolder> = all.iter().map(|f| (f.id.as_str(), f)).collect();
    let role_of = |id: &str| {
        WELL_KNOWN
            .iter()
            .zip(well_known)
            .find(|(_, known)| known.as_deref() == Some(id))
            .map(|((_, role), _)| *role)
    };
    let mut out = Vec::new();
    'folders: for folder in all {
        // The folder and its parents up to the top: none hidden, none left out by name.
        let mut names = Vec::new();
        let mut at = Some(folder);
        let mut hops = 0;
        while let Some(f) = at {
            if f.is_hidden || matches!(role_of(&f.id), Some(None)) || hops > 64 {
                continue 'folders;
            }
            names.push(f.display_name.as_str());
            at = f
                .parent_folder_id
                .as_deref()
                .and_then(|p| by_id.get(p))
                .copied();
            hops += 1;
        }
        names.reverse();
        out.push(Folder {
            path: folder.id.clone(),
            name: names.join("/"),
            role: role_of(&folder.id).flatten(),
            selectable: true,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(id: &str, name: &str, parent: &str, hidden: bool) -> MailFolder {
        MailFolder {
            id: id.into(),
            display_name: name.into(),
            parent_folder_id: Some(parent.into()),
            child_folder_count: 0,
            is_hidden: hidden,
        }
    }

    #[test]
    fn folders_get_paths_roles_and_leave_out_what_nobody_filed() {
        let all = vec![
            folder("in", "Inbox", "root", false),
            folder("sent", "Sent Items", "root", false),
            folder("out", "Outbox", "root", false),
            folder("sync", "Sync Issues", "root", false),
            folder("conf", "Conflicts", "sync", false),
            folder("hid", "Hidden", "root", true),
            folder("deals", "Deals", "in", false),
            folder("q4", "Q4", "deals", false),
            folder("under", "Under hidden", "hid", false),
        ];
        let known = [
            Some("in".to_owned()),
            Some("sent".to_owned()),
            None,
            None,
            None,
            None,
            Some("out".to_owned()),
            Some("sync".to_owned()),
        ];
        let listed: Vec<(String, String, Option<FolderRole>)> = folders(&all, &known)
            .into_iter()
            .map(|f| (f.path, f.name, f.role))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("in".into(), "Inbox".into(), Some(FolderRole::Inbox)),
                ("sent".into(), "Sent Items".into(), Some(FolderRole::Sent)),
                ("deals".into(), "Inbox/Deals".into(), None),
                ("q4".into(), "Inbox/Deals/Q4".into(), None),
            ]
        );
    }
}
