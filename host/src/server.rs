//! Starting and stopping a Mailroom server: configuration in, a listening API out.

use crate::api::{self, App};
use crate::config::Config;
use crate::net::TlsPolicy;
use crate::runtime::{Runtime, read_component};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server.
pub struct Server {
    addr: SocketAddr,
    runtime: Arc<Runtime>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    /// Builds the runtime (compiling the connectors), binds the listener and starts serving.
    /// `admin_token` is the token that authenticates the administrator.
    pub async fn start(config: &Config, admin_token: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data).with_context(|| {
            format!("cannot create the data directory {}", config.data.display())
        })?;
        let tls = TlsPolicy::new(config.ca_file.as_deref())?;
        let runtime = Arc::new(
            Runtime::new(
                &config.sandbox,
                &config.net,
                tls,
                Some(&config.data.join("cache")),
            )
            .await?,
        );
        for path in &config.connectors.files {
            let bytes = read_component(path)?;
            let info = runtime
                .load(&bytes, false)
                .await
                .with_context(|| format!("connector {} was refused", path.display()))?;
            tracing::info!(id = %info.id, version = %info.version, "loaded connector {}", path.display());
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App::new(runtime.clone(), admin_token, &config.api));
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
            runtime,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Stops accepting requests and waits for those under way.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}
