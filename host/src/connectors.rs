//! Installing and removing the connectors admins upload: the rules the API and the command
//! line share (docs/api.md, "Connectors").
//!
//! A component is compiled and checked before anything changes; then, one change at a time,
//! it is kept in the store (so that it loads again at start) and registered with the runtime.
//! A replaced or removed connector's running jobs finish on the code they hold. Nodes that
//! share a database follow it ([`follow`]): what one node installs, replaces, grants or
//! removes reaches the others within seconds.

use crate::account::{Account, AccountState};
use crate::connector::ConnectorInfo;
use crate::runtime::{LoadError, Runtime};
use crate::store::{Store, StoreError};

/// Why an install or a removal did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The component itself, or its id (`id_taken`, `builtin`).
    #[error(transparent)]
    Refused(#[from] LoadError),
    /// Accounts use what the change would take away.
    #[error("{0}")]
    InUse(String),
    #[error("no connector has that id")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an install did.
pub struct Installed {
    pub info: ConnectorInfo,
    /// A connector of the same id gave way.
    pub replaced: bool,
}

/// One install or removal at a time.
static CHANGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Compiles and checks `component`, keeps it and loads it. With `replace`, an uploaded
/// connector of the same id gives way, unless accounts use a server role the new version
/// drops.
pub async fn install(
    store: &dyn Store,
    runtime: &Runtime,
    component: Vec<u8>,
    replace: bool,
) -> Result<Installed, InstallError> {
    let mut prepared = runtime.prepare(component, false).await?;
    let id = prepared.info.id.clone();
    let _one_at_a_time = CHANGES.lock().await;
    let replaced = match runtime.connector(&id) {
        None => false,
        Some(loaded) if loaded.info.builtin => return Err(LoadError::Builtin(id).into()),
        Some(_) if !replace => return Err(LoadError::IdTaken(id).into()),
        Some(_) => {
            let accounts = accounts_of(store, &id).await?;
            if let Some((account, role)) = dropped_role(&accounts, &prepared.info) {
                return Err(InstallError::InUse(format!(
                    "version {} of `{id}` has no `{role}` server, which account {} uses",
                    prepared.info.version, account.id
                )));
            }
            true
        }
    };
    let digest = prepared.info.digest.clone();
    store
        .put_connector(&id, prepared.take_component(), &digest)
        .await?;
    // What an admin granted an earlier version holds for this one, as far as it asks.
    prepared.info.granted_hosts = granted(store, &prepared.info).await?;
    let info = runtime.register(prepared, replaced)?;
    tracing::info!(connector = %info.id, version = %info.version, digest = %info.digest, replaced, "connector installed");
    Ok(Installed { info, replaced })
}

/// Removes an uploaded connector. While accounts use it, refused unless `force`, which
/// disables them with a reason that names the connector; returns their ids.
pub async fn remove(
    store: &dyn Store,
    runtime: &Runtime,
    id: &str,
    force: bool,
) -> Result<Vec<String>, InstallError> {
    let _one_at_a_time = CHANGES.lock().await;
    let loaded = runtime.connector(id).ok_or(InstallError::NotFound)?;
    if loaded.info.builtin {
        return Err(LoadError::Builtin(id.to_owned()).into());
    }
    let accounts = accounts_of(store, id).await?;
    if !accounts.is_empty() && !force {
        return Err(InstallError::InUse(format!(
            "{} account(s) use `{id}`; delete them first, or remove it with force to disable them",
            accounts.len()
        )));
    }
    let reason = format!("its connector `{id}` was removed by an admin");
    let mut disabled = Vec::with_capacity(accounts.len());
    for account in accounts {
        disable(store, &account, &reason).await?;
        disabled.push(account.id);
    }
    store.delete_connector(id).await?;
    runtime.unregister(id)?;
    tracing::info!(connector = %id, "connector removed");
    Ok(disabled)
}

/// Loads the connectors kept in the store, at start. One that no longer loads (a world
/// version this host dropped, an id a configured file took) is reported and stays stored.
/// Grants a connector's HTTP requests the hosts `hosts` (of those it asks for), kept so
/// that they hold after a restart and for its next versions.
pub async fn grant(
    store: &dyn Store,
    runtime: &Runtime,
    id: &str,
    hosts: Vec<String>,
) -> Result<ConnectorInfo, InstallError> {
    let _one_at_a_time = CHANGES.lock().await;
    if runtime.connector(id).is_none() {
        return Err(InstallError::NotFound);
    }
    store.set_connector_grants(id, hosts.clone()).await?;
    runtime.grant(id, hosts).ok_or(InstallError::NotFound)
}

/// The hosts kept granted to the connector that this version of it asks for.
async fn granted(store: &dyn Store, info: &ConnectorInfo) -> Result<Vec<String>, StoreError> {
    let hosts = store.connector_grants(&info.id).await?;
    Ok(hosts
        .into_iter()
        .filter(|host| info.hosts.contains(host))
        .collect())
}

/// Gives every loaded connector the grants kept for it.
async fn restore_grants(store: &dyn Store, runtime: &Runtime) -> Result<(), StoreError> {
    for info in runtime.connectors() {
        let hosts = store.connector_grants(&info.id).await?;
        if !hosts.is_empty() {
            runtime.grant(&info.id, hosts);
        }
    }
    Ok(())
}

pub async fn load_installed(store: &dyn Store, runtime: &Runtime) -> Result<(), StoreError> {
    for id in store.connector_ids().await? {
        let Some(component) = store.connector_component(&id).await? else {
            continue;
        };
        let started = std::time::Instant::now();
        let loaded = match runtime.prepare(component, false).await {
            Ok(prepared) => runtime.register(prepared, false),
            Err(error) => Err(error),
        };
        match loaded {
            Ok(info) => tracing::info!(
                connector = %info.id,
                version = %info.version,
                "loaded an uploaded connector in {:?}",
                started.elapsed()
            ),
            Err(error) => {
                tracing::error!(connector = %id, "an uploaded connector did not load: {error}")
            }
        }
    }
    restore_grants(store, runtime).await
}

/// How often a node compares its uploaded connectors with the store's.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps this node's uploaded connectors as the store holds them, for as long as it runs:
/// a connector installed or replaced elsewhere is loaded, one removed elsewhere unloaded,
/// grants made elsewhere applied. `fixed` are the connectors loaded from files at start,
/// which the store does not hold and which stay.
pub async fn follow(
    store: std::sync::Arc<dyn Store>,
    runtime: std::sync::Arc<Runtime>,
    fixed: std::collections::HashSet<String>,
) {
    // Components that did not load here, by id: tried again only once replaced.
    let mut refused = std::collections::HashMap::new();
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        if let Err(error) = catch_up(store.as_ref(), &runtime, &fixed, &mut refused).await {
            tracing::warn!("cannot compare the connectors with the store: {error}");
        }
    }
}

async fn catch_up(
    store: &dyn Store,
    runtime: &Runtime,
    fixed: &std::collections::HashSet<String>,
    refused: &mut std::collections::HashMap<String, String>,
) -> Result<(), StoreError> {
    // Read under the lock: an install on this node is either wholly before or after.
    let _one_at_a_time = CHANGES.lock().await;
    let stored = store.connector_digests().await?;
    for (id, digest) in &stored {
        let loaded = runtime.connector(id);
        match &loaded {
            Some(loaded) if loaded.info.builtin || fixed.contains(id) => continue,
            Some(loaded) if &loaded.info.digest == digest => {
                let granted = granted(store, &loaded.info).await?;
                if granted != loaded.info.granted_hosts {
                    runtime.grant(id, granted);
                }
                continue;
            }
            _ if refused.get(id) == Some(digest) => continue,
            _ => {}
        }
        let Some(component) = store.connector_component(id).await? else {
            continue;
        };
        let mut prepared = match runtime.prepare(component, false).await {
            Ok(prepared) => prepared,
            Err(error) => {
                tracing::error!(connector = %id, "an uploaded connector did not load: {error}");
                refused.insert(id.clone(), digest.clone());
                continue;
            }
        };
        prepared.info.granted_hosts = granted(store, &prepared.info).await?;
        match runtime.register(prepared, loaded.is_some()) {
            Ok(info) => tracing::info!(
                connector = %info.id,
                version = %info.version,
                "loaded a connector another node installed"
            ),
            Err(error) => {
                tracing::error!(connector = %id, "an uploaded connector did not load: {error}");
                refused.insert(id.clone(), digest.clone());
            }
        }
    }
    for info in runtime.connectors() {
        let uploaded = !info.builtin && !fixed.contains(&info.id);
        if uploaded && !stored.iter().any(|(id, _)| *id == info.id) {
            runtime.unregister(&info.id).ok();
            tracing::info!(connector = %info.id, "unloaded a connector another node removed");
        }
    }
    Ok(())
}

async fn accounts_of(store: &dyn Store, connector: &str) -> Result<Vec<Account>, StoreError> {
    Ok(store
        .accounts()
        .await?
        .into_iter()
        .filter(|a| a.connector == connector)
        .collect())
}

/// An account that names a server role `info` does not declare, and that role.
fn dropped_role<'a>(
    accounts: &'a [Account],
    info: &ConnectorInfo,
) -> Option<(&'a Account, &'a str)> {
    accounts.iter().find_map(|account| {
        account
            .servers
            .iter()
            .find(|server| !info.servers.contains(&server.role))
            .map(|server| (account, server.role.as_str()))
    })
}

/// Disables an account whose connector goes away, and says so in the event log.
async fn disable(store: &dyn Store, account: &Account, reason: &str) -> Result<(), StoreError> {
    let reason = reason.to_owned();
    let disabled = store
        .modify_account(
            &account.id,
            Box::new(move |account| {
                account.enabled = false;
                account.set_state(AccountState::Disabled, Some(reason));
                true
            }),
        )
        .await?;
    if let Some(disabled) = disabled
        && disabled.state != account.state
    {
        let (kind, data) = disabled.state_changed_event();
        store.push_event(kind, data).await?;
    }
    Ok(())
}
