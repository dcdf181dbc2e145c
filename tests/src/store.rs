//! Changes made to a stopped Mailroom's store behind its back, for the tests of what the
//! next job makes of them.

use mailroom::folder::FolderId;
use mailroom::store::mail::{FolderSync, PageWrite};
use std::path::Path;

/// Takes the messages `message_ids` out of the account's folder `folder_id` (ids as the API
/// shows them) as if the page that brought them had been lost, and passes the folder's sync
/// state through `state` (which may leave it as it is): a message in no other folder is
/// gone, and no sync alone would bring it back.
pub async fn lose_messages(
    data: &Path,
    account: &str,
    folder_id: &str,
    message_ids: &[String],
    state: impl FnOnce(Vec<u8>) -> Vec<u8>,
) {
    let config = crate::mailroom::test_config(data);
    let store = mailroom::store::open(&config.store, data)
        .await
        .expect("the store opens");
    let folder = FolderId::from_stored(folder_id);
    let mut removed = Vec::new();
    for id in message_ids {
        let message = store.message(id).await.unwrap().expect("a stored message");
        let membership = message
            .folders
            .iter()
            .find(|m| m.folder_id == folder)
            .expect("the message is in the folder");
        removed.push(membership.provider_id.clone());
    }
    let sync = store
        .folder_syncs(account)
        .await
        .unwrap()
        .remove(&folder)
        .expect("the folder was synced");
    store
        .commit_page(PageWrite {
            account_id: account.to_owned(),
            folder_id: folder,
            initial: false,
            incoming: Vec::new(),
            changed: Vec::new(),
            removed,
            sync: Some(FolderSync {
                state: sync.state.map(state),
                backfilled: sync.backfilled,
            }),
        })
        .await
        .unwrap();
    store.finish_job(account).await.unwrap();
}
