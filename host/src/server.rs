//! Starting and stopping a Mailroom server: configuration in, a listening API out.

use crate::api::{self, App, Services};
use crate::clock::now_rfc3339;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::id::new_id;
use crate::metrics::Metrics;
use crate::net::TlsPolicy;
use crate::oauth::Oauth;
use crate::runtime::{Runtime, read_component};
use crate::secret::Secret;
use crate::store::Store;
use crate::sync::Scheduler;
use crate::user::{Role, Token, TokenHash, TokenOwner, User, new_token};
use crate::vault::{KEY_CHECK_CONTEXT, Vault};
use crate::webhooks::Deliverer;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What the operator hands a starting server besides its configuration (from the
/// environment: `MAILROOM_ADMIN_TOKEN`, `MAILROOM_SERVICE_TOKEN`, `MAILROOM_SECRET_KEY`).
#[derive(Default)]
pub struct Bootstrap {
    /// The first admin's token when the database has no user yet; generated when absent.
    pub admin_token: Option<String>,
    /// Registered as the `crm` service's token.
    pub service_token: Option<String>,
    /// The secret key list; the data directory's key file when absent.
    pub secret_key: Option<String>,
}

/// The name of the token registered from `MAILROOM_SERVICE_TOKEN`.
const SERVICE_TOKEN_NAME: &str = "MAILROOM_SERVICE_TOKEN";

/// How long stopping waits for requests under way.
const REQUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A running server.
pub struct Server {
    addr: SocketAddr,
    first_admin_token: Option<String>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
    scheduler: Arc<Scheduler>,
    deliverer: Arc<Deliverer>,
    cluster: Arc<Cluster>,
    /// Keeps the uploaded connectors as the store holds them.
    following: JoinHandle<()>,
}

/// Opens the database and the vault, and checks that the key fits what is stored.
pub async fn open_state(
    config: &Config,
    secret_key: Option<&str>,
) -> anyhow::Result<(Arc<dyn Store>, Arc<Vault>)> {
    private_dir(&config.data)
        .with_context(|| format!("cannot create the data directory {}", config.data.display()))?;
    let store = crate::store::open(&config.store, &config.data).await?;
    let vault = Arc::new(Vault::load(&config.data, secret_key)?);
    check_key(store.as_ref(), &vault).await?;
    Ok((store, vault))
}

/// Creates the data directory readable by this user alone (mode 0700), and makes an existing
/// one so: it holds everyone's mail.
pub fn private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Refuses to start with a key that cannot open what the database holds.
async fn check_key(store: &dyn Store, vault: &Vault) -> anyhow::Result<()> {
    let known = vault.key_ids();
    let check = store.key_check().await?;
    let sealed_under = store
        .secrets()
        .await?
        .into_iter()
        .map(|(_, sealed)| sealed.key_id)
        .chain(check.iter().map(|c| c.key_id.clone()));
    for key_id in sealed_under {
        if !known.contains(&key_id) {
            bail!(
                "the secret key does not fit this database: it holds secrets sealed under key {key_id}, \
                 but {} provides only key(s) {}",
                vault.source(),
                known.join(", ")
            );
        }
    }
    if let Some(check) = &check
        && vault.open(KEY_CHECK_CONTEXT, check).is_err()
    {
        bail!("the secret key does not fit this database: its check value does not decrypt");
    }
    if check.is_none_or(|c| c.key_id != vault.current_key_id()) {
        store
            .set_key_check(vault.seal(KEY_CHECK_CONTEXT, &Secret::new("mailroom")))
            .await?;
    }
    Ok(())
}

/// Creates the first admin when there is no user, and registers the service token.
/// Returns the first admin's token when one was created.
async fn bootstrap(store: &dyn Store, bootstrap: &Bootstrap) -> anyhow::Result<Option<String>> {
    let mut created = None;
    if store.user_count().await? == 0 {
        let admin = User {
            id: new_id("usr"),
            name: "Administrator".into(),
            email: "admin@localhost".into(),
            role: Role::Admin,
            shared_inbox: true,
            external_id: None,
            signature: None,
            created_at: now_rfc3339(),
            disabled: false,
        };
        let token = bootstrap.admin_token.clone().unwrap_or_else(new_token);
        store.insert_user(admin.clone()).await?;
        store
            .insert_token(
                TokenHash::of(&token),
                Token {
                    id: new_id("tok"),
                    owner: TokenOwner::User(admin.id.clone()),
                    name: "first start".into(),
                    created_at: now_rfc3339(),
                    last_used_at: None,
                },
            )
            .await?;
        tracing::info!(user = %admin.id, "created the first admin");
        created = Some(token);
    } else if bootstrap.admin_token.is_some() {
        tracing::info!("MAILROOM_ADMIN_TOKEN is ignored: the database has users already");
    }
    if let Some(token) = &bootstrap.service_token {
        let hash = TokenHash::of(token);
        // The variable names one token: a new value replaces the one registered before.
        let crm = TokenOwner::Service("crm".into());
        let current = store.token(&hash).await?.map(|t| t.id);
        for old in store.tokens_of(&crm).await? {
            if old.name == SERVICE_TOKEN_NAME && current.as_ref() != Some(&old.id) {
                store.delete_token(&old.id).await?;
                tracing::info!("revoked the previous MAILROOM_SERVICE_TOKEN");
            }
        }
        if current.is_none() {
            store
                .insert_token(
                    hash,
                    Token {
                        id: new_id("tok"),
                        owner: crm,
                        name: SERVICE_TOKEN_NAME.into(),
                        created_at: now_rfc3339(),
                        last_used_at: None,
                    },
                )
                .await?;
            tracing::info!("registered MAILROOM_SERVICE_TOKEN as the `crm` service");
        }
    }
    Ok(created)
}

impl Server {
    /// Opens the state, builds the runtime (compiling the connectors), binds the listener and
    /// starts serving.
    pub async fn start(config: &Config, setup: &Bootstrap) -> anyhow::Result<Self> {
        let (store, vault) = open_state(config, setup.secret_key.as_deref()).await?;
        let first_admin_token = bootstrap(store.as_ref(), setup).await?;
        let tls = TlsPolicy::new(config.ca_file.as_deref())?;
        let metrics = Arc::new(Metrics::new());
        let runtime = Arc::new(
            Runtime::new(
                &config.sandbox,
                &config.net,
                &config.connectors,
                tls,
                Some(&config.data),
                metrics.clone(),
            )
            .await?,
        );
        let mut fixed = std::collections::HashSet::new();
        for path in &config.connectors.files {
            let bytes = read_component(path, runtime.max_component_bytes())?;
            let info = runtime
                .load(bytes, false)
                .await
                .with_context(|| format!("connector {} was refused", path.display()))?;
            tracing::info!(id = %info.id, version = %info.version, "loaded connector {}", path.display());
            fixed.insert(info.id);
        }
        crate::connectors::load_installed(store.as_ref(), &runtime).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let cluster = Cluster::join(store.clone(), config.store.postgres.lease_secs).await?;
        tracing::info!(node = %cluster.node(), "joined the nodes of the store");
        let following = tokio::spawn(crate::connectors::follow(
            store.clone(),
            runtime.clone(),
            fixed,
        ));
        let redirect_url = config
            .oauth
            .redirect_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}/v1/oauth/callback"));
        let oauth = Oauth::new(
            config.oauth.clone(),
            redirect_url,
            runtime.http_client(),
            store.clone(),
            vault.clone(),
        );
        let deliverer = Arc::new(Deliverer::start(
            store.clone(),
            vault.clone(),
            runtime.http_client(),
            config.webhooks.clone(),
            metrics.clone(),
            cluster.clone(),
        ));
        let scheduler = Arc::new(Scheduler::start(
            store.clone(),
            runtime.clone(),
            vault.clone(),
            oauth.clone(),
            crate::sync::Settings {
                sync: config.sync.clone(),
                push: config.push.clone(),
                max_jobs: config.sandbox.max_concurrent_jobs,
                max_jobs_per_owner: config.sandbox.max_jobs_per_owner,
                on_events: {
                    let deliverer = deliverer.clone();
                    Box::new(move || deliverer.wake())
                },
                cluster: cluster.clone(),
            },
            metrics.clone(),
        ));
        let app = Arc::new(App::new(
            Services {
                runtime,
                store,
                vault,
                scheduler: scheduler.clone(),
                oauth,
                deliverer: deliverer.clone(),
                metrics,
            },
            config,
        ));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            warp::serve(api::routes(app))
                .incoming(listener)
                .graceful(async {
                    let _ = stopped.await;
                })
                .run(),
        );
        tracing::info!("listening on http://{addr}");
        Ok(Self {
            addr,
            first_admin_token,
            shutdown,
            task,
            scheduler,
            deliverer,
            cluster,
            following,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first admin's token, when this start created the first admin.
    pub fn first_admin_token(&self) -> Option<&str> {
        self.first_admin_token.as_deref()
    }

    /// Stops accepting requests and waits for those under way, for a while: requests still
    /// running then (a connection test waiting on a server that never answers) are cut off,
    /// so that the server always stops within about 20 s.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let mut task = self.task;
        let (_, _, served) = tokio::join!(
            self.scheduler.stop(),
            self.deliverer.stop(),
            tokio::time::timeout(REQUEST_GRACE, &mut task)
        );
        if served.is_err() {
            task.abort();
            let _ = task.await;
        }
        self.following.abort();
        self.cluster.leave().await;
    }
}
