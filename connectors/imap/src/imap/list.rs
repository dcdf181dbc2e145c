//! From `LIST` replies to folders: display names, selectability and roles.
//!
//! Roles come from the special-use attributes (RFC 6154) when the server has them; otherwise
//! from the names clients conventionally give these folders, at the top level or directly
//! under `INBOX` or Gmail's `[Gmail]`/`[Google Mail]`.

use super::reply::ListEntry;
use super::utf7;
use crate::mailroom::connector0_1_0::types::{Folder, FolderRole};

pub fn folders(entries: Vec<ListEntry>, special_use: bool) -> Vec<Folder> {
    let mut taken: Vec<FolderRole> = Vec::new();
    let mut folders = Vec::with_capacity(entries.len());
    for entry in entries {
        let has = |attribute: &str| {
            entry
                .attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case(attribute))
        };
        let selectable = !has("\\Noselect") && !has("\\NonExistent");
        let decoded = utf7::decode(&entry.name);
        let name = match entry.delimiter.as_deref() {
            Some(d) if d != "/" && !d.is_empty() => decoded.replace(d, "/"),
            _ => decoded,
        };
        let mut role = role_from_attributes(&entry.attributes);
        if role.is_none() && (!special_use || entry.name.eq_ignore_ascii_case("INBOX")) {
            role = role_from_name(&name);
        }
        // One folder per role: the first the server lists wins.
        if let Some(r) = role {
            if !selectable || taken.contains(&r) {
                role = None;
            } else {
                taken.push(r);
            }
        }
        folders.push(Folder {
            path: entry.name,
            name,
            role,
            selectable,
        });
    }
    folders
}

fn role_from_attributes(attributes: &[String]) -> Option<FolderRole> {
    attributes
        .iter()
        .find_map(|a| match a.to_ascii_lowercase().as_str() {
            "\\sent" => Some(FolderRole::Sent),
            "\\drafts" => Some(FolderRole::Drafts),
            "\\trash" => Some(FolderRole::Trash),
            "\\junk" => Some(FolderRole::Spam),
            "\\archive" => Some(FolderRole::Archive),
            "\\all" => Some(FolderRole::All),
            _ => None,
        })
}

/// `name` is the decoded display name, levels separated by `/`.
fn role_from_name(name: &str) -> Option<FolderRole> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Some(FolderRole::Inbox);
    }
    let (parent, leaf) = match name.rsplit_once('/') {
        Some((parent, leaf)) => (Some(parent), leaf),
        None => (None, name),
    };
    let conventional_parent = parent.is_none_or(|p| {
        ["INBOX", "[Gmail]", "[Google Mail]"]
            .iter()
            .any(|known| p.eq_ignore_ascii_case(known))
    });
    if !conventional_parent {
        return None;
    }
    let leaf = leaf.to_ascii_lowercase();
    let role = match leaf.as_str() {
        "sent" | "sent items" | "sent mail" | "sent messages" => FolderRole::Sent,
        "drafts" | "draft" => FolderRole::Drafts,
        "trash" | "deleted items" | "deleted messages" | "bin" => FolderRole::Trash,
        "junk" | "spam" | "junk e-mail" | "junk email" | "bulk mail" => FolderRole::Spam,
        "archive" | "archives" => FolderRole::Archive,
        "all mail" => FolderRole::All,
        _ => return None,
    };
    Some(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, attributes: &[&str]) -> ListEntry {
        ListEntry {
            name: name.into(),
            delimiter: Some("/".into()),
            attributes: attributes.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn roles(entries: Vec<ListEntry>, special_use: bool) -> Vec<(String, Option<FolderRole>)> {
        folders(entries, special_use)
            .into_iter()
            .map(|f| (f.name, f.role))
            .collect()
    }

    #[test]
    fn special_use_attributes_give_roles() {
        let got = roles(
            vec![
                entry("INBOX", &[]),
                entry("Gesendet", &["\\Sent"]),
                entry("Papierkorb", &["\\Trash", "\\HasNoChildren"]),
                entry("Sent", &[]),
            ],
            true,
        );
        assert_eq!(
            got,
            vec![
                ("INBOX".into(), Some(FolderRole::Inbox)),
                ("Gesendet".into(), Some(FolderRole::Sent)),
                ("Papierkorb".into(), Some(FolderRole::Trash)),
                ("Sent".into(), None),
            ]
        );
    }

    #[test]
    fn well_known_names_stand_in_without_special_use() {
        let got = roles(
            vec![
                entry("INBOX", &[]),
                entry("Sent Items", &[]),
                entry("Deleted Items", &[]),
                entry("Junk E-mail", &[]),
                entry("[Gmail]", &["\\Noselect"]),
                entry("[Gmail]/All Mail", &[]),
                entry("[Gmail]/Drafts", &[]),
                entry("Projects/Archive", &[]),
            ],
            false,
        );
        let role = |name: &str| got.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(role("Sent Items"), Some(FolderRole::Sent));
        assert_eq!(role("Deleted Items"), Some(FolderRole::Trash));
        assert_eq!(role("Junk E-mail"), Some(FolderRole::Spam));
        assert_eq!(role("[Gmail]/All Mail"), Some(FolderRole::All));
        assert_eq!(role("[Gmail]/Drafts"), Some(FolderRole::Drafts));
        assert_eq!(role("[Gmail]"), None);
        assert_eq!(role("Projects/Archive"), None);
    }

    #[test]
    fn other_delimiters_and_utf7_names_are_shown_plainly() {
        let list = folders(
            vec![ListEntry {
                name: "INBOX.Entw&APw-rfe".into(),
                delimiter: Some(".".into()),
                attributes: vec![],
            }],
            false,
        );
        assert_eq!(list[0].name, "INBOX/Entwürfe");
        assert_eq!(list[0].path, "INBOX.Entw&APw-rfe");
        assert!(list[0].selectable);
    }
}
