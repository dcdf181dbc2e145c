//! What a run of Gmail's change records means for each folder.
//!
//! Follows "Synchronizing clients with Gmail" (partial synchronization: `history.list` from
//! the last history id, in chronological order) and the `users.history.list` reference: each
//! record lists messages added, deleted, and labels added or removed, and the message of an
//! added-message or label record carries its labels after the change. Only a message's end
//! state matters: its labels after its last record, or that it was deleted.

use crate::gmail::HistoryRecord;
use crate::labels::in_folder;
use crate::page::Candidate;
use std::collections::HashMap;

/// How a message touched by the records ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Deleted for good (not trashed: trashing is a label).
    Deleted,
    /// Present, with these labels.
    Labels(Vec<String>),
    /// Present, with labels the records did not say.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    pub id: String,
    pub fate: Fate,
}

/// Reads change records in order and keeps each message's end state, messages in the order
/// the records first touched them.
#[derive(Debug, Default)]
pub struct Tracker {
    touched: Vec<Touched>,
    at: HashMap<String, usize>,
}

impl Tracker {
    pub fn add(&mut self, record: &HistoryRecord) {
        for change in &record.messages_added {
            let fate = match &change.message.label_ids {
                Some(labels) => Fate::Labels(labels.clone()),
                None => Fate::Unknown,
            };
            self.set(&change.message.id, fate);
        }
        for change in &record.labels_added {
            let fate = match &change.message.label_ids {
                Some(labels) => Fate::Labels(labels.clone()),
                None => self.adjusted(&change.message.id, &change.label_ids, &[]),
            };
            self.set(&change.message.id, fate);
        }
        for change in &record.labels_removed {
            let fate = match &change.message.label_ids {
                Some(labels) => Fate::Labels(labels.clone()),
                None => self.adjusted(&change.message.id, &[], &change.label_ids),
            };
            self.set(&change.message.id, fate);
        }
        for change in &record.messages_deleted {
            self.set(&change.message.id, Fate::Deleted);
        }
    }

    /// A message's labels after a change that named only the labels it added or removed.
    fn adjusted(&self, id: &str, add: &[String], remove: &[String]) -> Fate {
        match self.at.get(id).map(|&i| &self.touched[i].fate) {
            Some(Fate::Labels(labels)) => {
                let mut labels: Vec<String> = labels
                    .iter()
                    .filter(|l| !remove.contains(l))
                    .cloned()
                    .collect();
                for label in add {
                    if !labels.contains(label) {
                        labels.push(label.clone());
                    }
                }
                Fate::Labels(labels)
            }
            _ => Fate::Unknown,
        }
    }

    fn set(&mut self, id: &str, fate: Fate) {
        match self.at.get(id) {
            // Nothing comes back from a deletion.
            Some(&i) if self.touched[i].fate == Fate::Deleted => {}
            Some(&i) => self.touched[i].fate = fate,
            None => {
                self.at.insert(id.to_owned(), self.touched.len());
                self.touched.push(Touched {
                    id: id.to_owned(),
                    fate,
                });
            }
        }
    }

    pub fn finish(self) -> Vec<Touched> {
        self.touched
    }
}

/// What the touched messages mean for one folder.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FolderPlan {
    /// Messages in the folder now, to hand over (held or fetched).
    pub emit: Vec<Candidate>,
    /// Messages not in the folder now (deleted, or moved or labelled elsewhere): the host
    /// drops those it holds there.
    pub removed: Vec<String>,
}

pub fn plan(touched: &[Touched], folder: &str) -> FolderPlan {
    let mut plan = FolderPlan::default();
    for message in touched {
        match &message.fate {
            Fate::Deleted => plan.removed.push(message.id.clone()),
            Fate::Labels(labels) if in_folder(labels, folder) => plan.emit.push(Candidate {
                id: message.id.clone(),
                labels: Some(labels.clone()),
            }),
            Fate::Labels(_) => plan.removed.push(message.id.clone()),
            Fate::Unknown => plan.emit.push(Candidate {
                id: message.id.clone(),
                labels: None,
            }),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gmail::HistoryPage;

    fn records(json: &str) -> Vec<HistoryRecord> {
        serde_json::from_str::<HistoryPage>(json).unwrap().history
    }

    fn track(json: &str) -> Vec<Touched> {
        let mut tracker = Tracker::default();
        for record in records(json) {
            tracker.add(&record);
        }
        tracker.finish()
    }

    fn labels(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    const RECORDS: &str = r#"{"history":[
        {"id":"1","messagesAdded":[{"message":{"id":"a","labelIds":["INBOX","UNREAD"]}}]},
        {"id":"2","messagesAdded":[{"message":{"id":"b","labelIds":["INBOX"]}}]},
        {"id":"3","labelsRemoved":[{"message":{"id":"a","labelIds":["INBOX"]},"labelIds":["UNREAD"]}]},
        {"id":"4","labelsAdded":[{"message":{"id":"b","labelIds":["INBOX","TRASH"]},"labelIds":["TRASH"]}]},
        {"id":"5","labelsAdded":[{"message":{"id":"c","labelIds":["Label_1","STARRED"]},"labelIds":["Label_1"]}]},
        {"id":"6","messagesDeleted":[{"message":{"id":"d"}}]},
        {"id":"7","labelsRemoved":[{"message":{"id":"c","labelIds":["STARRED"]},"labelIds":["Label_1"]}]},
        {"id":"8","messagesAdded":[{"message":{"id":"e"}}]}
    ],"historyId":"9"}"#;

    #[test]
    fn each_message_keeps_its_last_state_in_first_touch_order() {
        assert_eq!(
            track(RECORDS),
            vec![
                Touched {
                    id: "a".into(),
                    fate: Fate::Labels(labels(&["INBOX"]))
                },
                Touched {
                    id: "b".into(),
                    fate: Fate::Labels(labels(&["INBOX", "TRASH"]))
                },
                Touched {
                    id: "c".into(),
                    fate: Fate::Labels(labels(&["STARRED"]))
                },
                Touched {
                    id: "d".into(),
                    fate: Fate::Deleted
                },
                Touched {
                    id: "e".into(),
                    fate: Fate::Unknown
                },
            ]
        );
    }

    #[test]
    fn folders_get_what_is_in_them_and_lose_the_rest() {
        let touched = track(RECORDS);
        let inbox = plan(&touched, "INBOX");
        assert_eq!(
            inbox.emit,
            vec![
                Candidate {
                    id: "a".into(),
                    labels: Some(labels(&["INBOX"]))
                },
                Candidate {
                    id: "e".into(),
                    labels: None
                },
            ]
        );
        assert_eq!(inbox.removed, vec!["b", "c", "d"]);

        let trash = plan(&touched, "TRASH");
        assert_eq!(
            trash.emit.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            vec!["b", "e"]
        );
        assert_eq!(trash.removed, vec!["a", "c", "d"]);

        let label = plan(&touched, "Label_1");
        assert_eq!(
            label.emit.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            vec!["e"]
        );
        assert_eq!(label.removed, vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn label_changes_without_the_full_labels_adjust_what_is_known() {
        let touched = track(
            r#"{"history":[
            {"id":"1","messagesAdded":[{"message":{"id":"a","labelIds":["INBOX","UNREAD"]}}]},
            {"id":"2","labelsRemoved":[{"message":{"id":"a"},"labelIds":["UNREAD"]}]},
            {"id":"3","labelsAdded":[{"message":{"id":"a"},"labelIds":["Label_2"]}]},
            {"id":"4","labelsAdded":[{"message":{"id":"z"},"labelIds":["Label_2"]}]}
        ]}"#,
        );
        assert_eq!(touched[0].fate, Fate::Labels(labels(&["INBOX", "Label_2"])));
        assert_eq!(touched[1].fate, Fate::Unknown);
    }

    #[test]
    fn deletion_is_final() {
        let touched = track(
            r#"{"history":[
            {"id":"1","messagesDeleted":[{"message":{"id":"a"}}]},
            {"id":"2","labelsRemoved":[{"message":{"id":"a","labelIds":[]},"labelIds":["INBOX"]}]}
        ]}"#,
        );
        assert_eq!(touched[0].fate, Fate::Deleted);
    }
}
