//! The WebAssembly runtime: loads connector components and runs their jobs in a sandbox.
//!
//! One `Engine` (component model, async, epoch interruption driven by a ticker thread) serves
//! every job. A connector is compiled once when it is loaded (compiled code is cached on disk
//! by the digest of the component and the engine's settings) and instantiated per job through
//! an `InstancePre`, which costs microseconds. Each job runs in a fresh `Store` (see
//! [`sandbox`]) under a wall-clock timeout; a connector that traps, runs out of memory or CPU,
//! or overruns its time fails its own job with a clear error and nothing else.
//!
//! Never gives a connector a secret, a file, an environment variable or a socket of its own.

pub mod builtin;
mod host;
mod http;
mod output;
pub mod sandbox;
pub mod sink;
mod sync;
mod watch;
mod wit;

pub use sync::{FolderTask, HeldIdsLookup, HeldLookup, KnownLookup, Lookups, Step, SyncDriver};
pub use watch::WatchNews;
pub use wit::Watching;

use crate::account::ConnectionSpec;
use crate::auth::Credentials;
use crate::config::{ConnectorsConfig, NetConfig, SandboxConfig};
use crate::connector::{ConnectorError, ConnectorInfo, ErrorKind};
use crate::folder::Folder;
use crate::metrics::Metrics;
use crate::net::http::{HttpClient, Origin, PlainHttp};
use crate::net::kept::KeepLimits;
use crate::net::policy::AllowList;
use crate::net::{Kept, NetPolicy, TlsPolicy};
use anyhow::{Context, bail};
use futures::future::BoxFuture;
use sandbox::{
    CpuBudgetExceeded, JobAccount, JobLimits, JobState, MemoryLimitExceeded, OutputCaps, TICK,
};
use sink::SinkPool;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Cache, CacheConfig, Config, Engine, Store};

/// How long compiling one component may take before the upload is refused.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a component was not loaded; [`LoadError::code`] is the API's error code for it
/// (docs/api.md, "Connectors").
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the component is {size} bytes; this server accepts at most {max}")]
    TooLarge { size: usize, max: usize },
    #[error("{0}")]
    NotAComponent(String),
    #[error("{0}")]
    UnsupportedWorld(String),
    #[error("{0}")]
    ForbiddenImport(String),
    #[error("{0}")]
    InvalidDescribe(String),
    #[error("{0}")]
    CompileFailed(String),
    #[error("a connector with id `{0}` is loaded already")]
    IdTaken(String),
    #[error("`{0}` is a built-in connector: it can be neither replaced nor removed")]
    Builtin(String),
}

impl LoadError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::NotAComponent(_) => "not_a_component",
            Self::UnsupportedWorld(_) => "unsupported_world",
            Self::ForbiddenImport(_) => "forbidden_import",
            Self::InvalidDescribe(_) => "invalid_describe",
            Self::CompileFailed(_) => "compile_failed",
            Self::IdTaken(_) => "id_taken",
            Self::Builtin(_) => "builtin",
        }
    }
}

/// A component compiled and checked, not yet registered.
pub struct Prepared {
    pub info: ConnectorInfo,
    compiled: wit::Compiled,
    /// The component's bytes, for whoever keeps them.
    component: Vec<u8>,
}

impl Prepared {
    /// The component's bytes, taken out.
    pub fn take_component(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.component)
    }
}

/// A connector ready to run.
pub struct LoadedConnector {
    pub info: ConnectorInfo,
    compiled: wit::Compiled,
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<JobState>,
    connectors: RwLock<BTreeMap<String, Arc<LoadedConnector>>>,
    limits: JobLimits,
    job_timeout: Duration,
    net: NetPolicy,
    tls: TlsPolicy,
    http: HttpSettings,
    /// Bounds the sync jobs running at once, whatever their accounts.
    jobs: tokio::sync::Semaphore,
    /// Bounds the connection tests running at once: a pool of their own, so that tests
    /// against slow servers never hold up sync, nor the other way round.
    tests: tokio::sync::Semaphore,
    /// Where the body sinks of every job keep large messages.
    sinks: Arc<SinkPool>,
    /// The largest component accepted (`connectors.max_upload_mib`).
    max_component_bytes: usize,
    ticker_stop: Arc<AtomicBool>,
    /// Where jobs stopped by the sandbox are counted.
    metrics: Arc<Metrics>,
    /// Logged-in connections kept between an account's jobs.
    kept: Arc<Kept>,
}

/// How connectors' HTTP requests are sent.
struct HttpSettings {
    client: HttpClient,
    granted_private: bool,
    max_request_bytes: usize,
}

/// Which pool a job runs in.
#[derive(Clone, Copy)]
enum Pool {
    Sync,
    Test,
    /// A watch: no slot (it mostly waits), and time limits of its own (see `watch`).
    Watch,
}

type JobFuture<'a, R> = BoxFuture<'a, wasmtime::Result<R>>;

impl Runtime {
    /// Builds the engine, starts the epoch ticker and loads the built-in connectors. In
    /// `data_dir`, `cache/` holds compiled code between runs and `spool/` the large messages
    /// being written (the system's temporary directory without one).
    pub async fn new(
        sandbox: &SandboxConfig,
        net: &NetConfig,
        connectors: &ConnectorsConfig,
        tls: TlsPolicy,
        data_dir: Option<&Path>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let spool_dir = match data_dir {
            Some(data) => data.join("spool"),
            None => std::env::temp_dir().join(format!("mailroom-spool-{}", std::process::id())),
        };
        if let Some(dir) = data_dir.map(|d| d.join("cache")) {
            let dir = dir.as_path();
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            config.cache(Some(Cache::new(cache)?));
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wit::add_to_linker(&mut linker)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })?;
        }

        let kept = Arc::new(Kept::new(KeepLimits {
            per_account: net.keep_per_account,
            total: net.keep_total,
            idle: Duration::from_secs(net.keep_idle_secs.max(1)),
        }));
        Kept::sweep(&kept);
        let runtime = Self {
            engine,
            linker,
            connectors: RwLock::new(BTreeMap::new()),
            limits: JobLimits {
                memory_bytes: (sandbox.memory_mib as usize) << 20,
                cpu_ticks: (sandbox.cpu_ms / TICK.as_millis() as u64).max(1),
                log_bytes: sandbox.log_bytes,
                caps: OutputCaps {
                    max_folders: sandbox.max_folders,
                    max_name_bytes: sandbox.max_folder_name_bytes,
                    max_state_bytes: sandbox.max_state_bytes,
                    max_page_ids: sandbox.max_page_ids,
                    max_id_bytes: sandbox.max_id_bytes,
                    max_reply_bytes: sandbox.max_reply_bytes,
                },
            },
            job_timeout: Duration::from_millis(sandbox.job_timeout_ms),
            http: HttpSettings {
                client: HttpClient {
                    net: NetPolicy::new(net),
                    tls: tls.clone(),
                    max_response_bytes: (net.http_max_response_mib as usize) << 20,
                    plain: if net.http_plain_loopback {
                        PlainHttp::Loopback
                    } else {
                        PlainHttp::Never
                    },
                },
                granted_private: net.http_granted_private,
                max_request_bytes: (net.http_max_request_mib as usize) << 20,
            },
            net: NetPolicy::new(net),
            tls,
            jobs: tokio::sync::Semaphore::new(sandbox.max_concurrent_jobs.max(1)),
            tests: tokio::sync::Semaphore::new(sandbox.max_concurrent_tests.max(1)),
            sinks: SinkPool::new(
                spool_dir,
                sandbox.sink_memory_mib << 20,
                sandbox.spool_mib << 20,
            ),
            max_component_bytes: connectors.max_upload_mib << 20,
            ticker_stop,
            metrics,
            kept,
        };
        for (name, bytes) in builtin::CONNECTORS {
            runtime
                .load(bytes.to_vec(), true)
                .await
                .with_context(|| format!("built-in connector `{name}` failed to load"))?;
        }
        Ok(runtime)
    }

    /// Validates, compiles and registers a connector whose id is not taken.
    pub async fn load(&self, bytes: Vec<u8>, builtin: bool) -> Result<ConnectorInfo, LoadError> {
        let prepared = self.prepare(bytes, builtin).await?;
        self.register(prepared, false)
    }

    /// Validates and compiles a component and checks what its `describe` says, without
    /// registering it. Refuses a component that is too large, not a component, built for a
    /// world this host does not speak, importing what the host does not provide, failing to
    /// compile, or describing itself wrongly.
    pub async fn prepare(&self, bytes: Vec<u8>, builtin: bool) -> Result<Prepared, LoadError> {
        if !builtin && bytes.len() > self.max_component_bytes {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                max: self.max_component_bytes,
            });
        }
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
                return Err(LoadError::NotAComponent(
                    "this is a core WebAssembly module, not a component: build for wasm32-wasip2 or wrap it with `wasm-tools component new`".into(),
                ));
            }
            Some([0, b'a', b's', b'm', ..]) => {}
            _ => {
                return Err(LoadError::NotAComponent(
                    "this is not a WebAssembly component (it does not start with `\\0asm`)".into(),
                ));
            }
        }
        let digest = crate::connector::component_digest(&bytes);
        let engine = self.engine.clone();
        let compile = tokio::task::spawn_blocking(move || {
            let compiled = Component::new(&engine, &bytes);
            (compiled, bytes)
        });
        let (component, bytes) = match tokio::time::timeout(COMPILE_TIMEOUT, compile).await {
            Ok(Ok((Ok(component), bytes))) => (component, bytes),
            Ok(Ok((Err(e), _))) => {
                return Err(LoadError::CompileFailed(format!(
                    "the component could not be compiled: {e:#}"
                )));
            }
            Ok(Err(e)) => return Err(LoadError::CompileFailed(format!("compiling failed: {e}"))),
            Err(_) => {
                return Err(LoadError::CompileFailed(format!(
                    "compiling took longer than {COMPILE_TIMEOUT:?}"
                )));
            }
        };
        self.audit_imports(&component)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            LoadError::UnsupportedWorld(format!(
                "the component's imports do not fit any mailroom:connector world this host speaks: {e}"
            ))
        })?;
        let (compiled, wit_version) =
            wit::Compiled::new(pre).map_err(|e| LoadError::UnsupportedWorld(e.to_string()))?;
        let described = self
            .describe(&compiled)
            .await
            .map_err(|e| LoadError::InvalidDescribe(e.to_string()))?;
        let info = ConnectorInfo {
            id: described.id,
            name: described.name,
            version: described.version,
            wit_version: wit_version.to_owned(),
            auth: described.auth,
            servers: described.servers,
            hosts: described.hosts,
            granted_hosts: Vec::new(),
            files_sent: described.files_sent,
            mailbox_wide_ids: described.mailbox_wide_ids,
            builtin,
            digest,
        };
        validate_info(&info).map_err(|e| LoadError::InvalidDescribe(e.to_string()))?;
        Ok(Prepared {
            info,
            compiled,
            component: bytes,
        })
    }

    /// Makes a prepared connector the one its id names. With `replace`, one loaded under the
    /// same id gives way (its running jobs finish on its code); never a built-in.
    pub fn register(&self, prepared: Prepared, replace: bool) -> Result<ConnectorInfo, LoadError> {
        let mut connectors = self
            .connectors
            .write()
            .expect("connector registry poisoned");
        let id = prepared.info.id.clone();
        if let Some(loaded) = connectors.get(&id) {
            if loaded.info.builtin {
                return Err(LoadError::Builtin(id));
            }
            if !replace {
                return Err(LoadError::IdTaken(id));
            }
        }
        let info = prepared.info.clone();
        connectors.insert(
            id,
            Arc::new(LoadedConnector {
                info: prepared.info,
                compiled: prepared.compiled,
            }),
        );
        Ok(info)
    }

    /// Unloads an uploaded connector; running jobs finish on its code. `Ok(false)` when no
    /// connector has that id.
    pub fn unregister(&self, id: &str) -> Result<bool, LoadError> {
        let mut connectors = self
            .connectors
            .write()
            .expect("connector registry poisoned");
        match connectors.get(id) {
            None => Ok(false),
            Some(loaded) if loaded.info.builtin => Err(LoadError::Builtin(id.to_owned())),
            Some(_) => Ok(connectors.remove(id).is_some()),
        }
    }

    /// Sets the hosts a loaded connector's HTTP requests may go to, of those it asks for;
    /// running jobs keep what they started with. `None` when no connector has that id.
    pub fn grant(&self, id: &str, hosts: Vec<String>) -> Option<ConnectorInfo> {
        let mut connectors = self
            .connectors
            .write()
            .expect("connector registry poisoned");
        let loaded = connectors.get(id)?;
        let mut info = loaded.info.clone();
        info.granted_hosts = hosts
            .into_iter()
            .filter(|host| info.hosts.contains(host))
            .collect();
        let compiled = loaded.compiled.clone();
        connectors.insert(
            id.to_owned(),
            Arc::new(LoadedConnector {
                info: info.clone(),
                compiled,
            }),
        );
        Some(info)
    }

    /// The loaded connectors, by id.
    pub fn connectors(&self) -> Vec<ConnectorInfo> {
        let connectors = self.connectors.read().expect("connector registry poisoned");
        connectors.values().map(|c| c.info.clone()).collect()
    }

    pub fn connector(&self, id: &str) -> Option<Arc<LoadedConnector>> {
        let connectors = self.connectors.read().expect("connector registry poisoned");
        connectors.get(id).cloned()
    }

    /// The connector an account names, or why there is none.
    fn loaded(&self, id: &str) -> Result<Arc<LoadedConnector>, ConnectorError> {
        self.connector(id).ok_or_else(|| {
            ConnectorError::new(ErrorKind::NotFound, format!("unknown connector `{id}`"))
        })
    }

    /// Connects to every server of the account and lists its folders.
    pub async fn test_connection(
        &self,
        spec: &ConnectionSpec,
    ) -> Result<Vec<Folder>, ConnectorError> {
        let connector = self.loaded(&spec.connector)?;
        let job = self.job_account(&connector, spec);
        let spec = spec.clone();
        let folders = self
            .run(&connector, Pool::Test, Some(job), move |store, instance| {
                Box::pin(async move { instance.test(store, &spec).await })
            })
            .await?;
        Ok(folders)
    }

    async fn describe(&self, compiled: &wit::Compiled) -> anyhow::Result<wit::Described> {
        let mut store = self.store("(loading)", None);
        let call = async {
            let instance = compiled.instantiate(&mut store).await?;
            instance.describe(&mut store).await
        };
        match tokio::time::timeout(Duration::from_secs(10), call).await {
            Ok(Ok(described)) => Ok(described),
            Ok(Err(e)) => bail!("describe() failed: {}", trap_message(&e, &store)),
            Err(_) => bail!("describe() did not return within 10 s"),
        }
    }

    fn store(&self, connector_id: &str, account: Option<JobAccount>) -> Store<JobState> {
        JobState::store(
            &self.engine,
            connector_id,
            account,
            &self.limits,
            self.net.clone(),
            self.tls.clone(),
            self.sinks.clone(),
        )
    }

    /// Whether the connector can watch folders (a session's `watch`, from 0.8.0).
    pub fn watches(&self, id: &str) -> bool {
        self.connector(id)
            .is_some_and(|c| wit::watches(&c.info.wit_version))
    }

    /// The connections kept between accounts' jobs.
    pub fn kept(&self) -> &Kept {
        &self.kept
    }

    /// The client connectors' HTTP requests go through, for the host's own requests too.
    pub fn http_client(&self) -> HttpClient {
        self.http.client.clone()
    }

    /// The largest component accepted.
    pub fn max_component_bytes(&self) -> usize {
        self.max_component_bytes
    }

    /// The host-wide allowance of body sinks, to observe.
    pub fn sinks(&self) -> &SinkPool {
        &self.sinks
    }

    /// Runs one job: a fresh instance in a fresh store, `body` driving it, the whole under
    /// the job timeout. A trap or a timeout becomes a [`ConnectorError`] naming the server the
    /// connector was last talking to. When the host learned during the job that the
    /// account's credentials failed (a refused OAuth grant), that is the job's error.
    async fn run<R: Send>(
        &self,
        connector: &LoadedConnector,
        pool: Pool,
        account: Option<JobAccount>,
        body: impl for<'a> FnOnce(
            &'a mut Store<JobState>,
            wit::Instance,
        ) -> JobFuture<'a, Result<R, ConnectorError>>,
    ) -> Result<R, ConnectorError> {
        let id = connector.info.id.as_str();
        let (slots, limit) = match pool {
            Pool::Sync => (Some(&self.jobs), self.job_timeout),
            Pool::Test => (Some(&self.tests), self.job_timeout),
            Pool::Watch => (None, Duration::MAX),
        };
        let _turn = match slots {
            Some(slots) => Some(slots.acquire().await.map_err(|_| {
                ConnectorError::new(ErrorKind::Connector, "the runtime is shutting down")
            })?),
            None => None,
        };
        let mut store = self.store(id, account);
        let outcome = tokio::time::timeout(limit, async {
            let instance = connector.compiled.instantiate(&mut store).await?;
            body(&mut store, instance).await
        })
        .await;
        let output = store.data().take_output();
        if let Some(output) = &output {
            let output = host::escape_controls(output);
            tracing::info!(target: "mailroom::connector", connector = id, "output: {output}");
        }
        let stage = store.data().last_server.clone();
        // The connector reports the host's own 401 as a failed login; the host knows why.
        if let Ok(Ok(Err(error))) = &outcome
            && error.kind == ErrorKind::AuthFailed
            && let Some(problem) = store.data().http.problem()
        {
            return Err(problem);
        }
        let error = match outcome {
            Ok(Ok(value)) => return value,
            Ok(Err(trap)) => {
                let mut message = trap_message(&trap, &store);
                // What a guest's runtime printed as it failed (a Python traceback's last
                // line, a Rust panic message) says more than the trap itself.
                if let Some(last) = output.as_deref().and_then(last_line) {
                    message.push_str(&format!(" (its last output: {last})"));
                }
                tracing::warn!(connector = id, "connector job failed: {message}");
                self.metrics.connector_failure(id, trap_kind(&trap, &store));
                let kind = if trap.downcast_ref::<host::Denied>().is_some() {
                    ErrorKind::Denied
                } else {
                    ErrorKind::Connector
                };
                ConnectorError::new(kind, message)
            }
            Err(_) => {
                self.metrics.connector_failure(id, "timeout");
                ConnectorError::new(
                    ErrorKind::Timeout,
                    format!("the connector did not finish within {limit:?}"),
                )
            }
        };
        Err(match stage {
            Some(stage) => error.on_server(stage),
            None => error,
        })
    }

    /// Every import must be a mailroom interface or a WASI interface that guest toolchains
    /// import; the host links WASI with no files, no sockets and no environment.
    fn audit_imports(&self, component: &Component) -> Result<(), LoadError> {
        const ALLOWED: &[&str] = &[
            "mailroom:connector/",
            "wasi:cli/",
            "wasi:io/",
            "wasi:clocks/",
            "wasi:random/",
            "wasi:filesystem/",
            "wasi:sockets/",
            // Outgoing HTTP, for the world versions that speak it (checked below).
            "wasi:http/types@",
            "wasi:http/outgoing-handler@",
        ];
        for (name, _) in component.component_type().imports(&self.engine) {
            if !ALLOWED.iter().any(|prefix| name.starts_with(prefix)) {
                return Err(LoadError::ForbiddenImport(format!(
                    "the component imports `{name}`, which connectors may not use"
                )));
            }
            if name.starts_with("wasi:http/") && !self.speaks_http(component) {
                return Err(LoadError::ForbiddenImport(format!(
                    "the component imports `{name}`, which only connectors of mailroom:connector@0.5.0 and later may use"
                )));
            }
        }
        Ok(())
    }
}

impl Runtime {
    /// What a job of `connector` may reach and log in with, for the account `spec` describes.
    fn job_account(&self, connector: &LoadedConnector, spec: &ConnectionSpec) -> JobAccount {
        let credentials = spec.password.clone().map(|password| Credentials {
            login: spec.login().to_owned(),
            password,
        });
        let allow = AllowList::new(spec.servers.clone());
        let http = http::HttpAccess {
            client: self.http.client.clone(),
            granted_private: self.http.granted_private,
            max_request_bytes: self.http.max_request_bytes,
            request_budget: Arc::new(tokio::sync::Semaphore::new(
                self.http.max_request_bytes.div_ceil(1024),
            )),
            in_flight: Arc::new(tokio::sync::Semaphore::new(http::MAX_IN_FLIGHT)),
            api: spec.api_url.as_deref().and_then(Origin::parse),
            servers: allow.clone(),
            granted: connector.info.granted_hosts.clone(),
            bearer: spec.bearer.clone(),
            basic: credentials.clone(),
            problem: std::sync::Mutex::new(None),
        };
        JobAccount {
            keep: None,
            allow,
            credentials,
            allow_insecure_certificate: spec.allow_insecure_certificate,
            held: None,
            known: None,
            held_ids: None,
            http: Arc::new(http),
            api_url: spec.api_url.clone(),
        }
    }

    /// Whether the component exports the connector interface of a world version that may use
    /// `wasi:http`.
    fn speaks_http(&self, component: &Component) -> bool {
        component
            .component_type()
            .exports(&self.engine)
            .filter_map(|(name, _)| name.strip_prefix("mailroom:connector/connector@"))
            .any(wit::speaks_http)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A trap's message: the sandbox's own reasons first, then the guest's.
/// What stopped a job, for the metrics: `cpu_budget`, `memory`, `denied` or `trap`.
fn trap_kind(trap: &wasmtime::Error, store: &Store<JobState>) -> &'static str {
    if trap.downcast_ref::<CpuBudgetExceeded>().is_some() {
        "cpu_budget"
    } else if trap.downcast_ref::<MemoryLimitExceeded>().is_some() || store.data().memory.exceeded {
        "memory"
    } else if trap.downcast_ref::<host::Denied>().is_some() {
        "denied"
    } else {
        "trap"
    }
}

fn trap_message(trap: &wasmtime::Error, store: &Store<JobState>) -> String {
    if let Some(cpu) = trap.downcast_ref::<CpuBudgetExceeded>() {
        return cpu.to_string();
    }
    if let Some(memory) = trap.downcast_ref::<MemoryLimitExceeded>() {
        return memory.to_string();
    }
    if let Some(denied) = trap.downcast_ref::<host::Denied>() {
        return denied.to_string();
    }
    if store.data().memory.exceeded {
        return "the connector ran out of memory".to_owned();
    }
    let root = trap.root_cause().to_string();
    format!("the connector failed: {root}")
}

/// The last line of a guest's output that is neither blank nor a hint (Rust's `note: run
/// with RUST_BACKTRACE=1`), escaped and cut to 300 bytes.
fn last_line(output: &str) -> Option<String> {
    let line = output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("note: "))?;
    Some(host::truncate(host::escape_controls(line.trim()), 300))
}

fn validate_info(info: &ConnectorInfo) -> anyhow::Result<()> {
    let is_slug = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    if !is_slug(&info.id, 32) {
        bail!(
            "connector id `{}` must be 1-32 of a-z, 0-9, - and _",
            host::escape_controls(&info.id)
        );
    }
    if info.name.trim().is_empty() || info.name.len() > 100 {
        bail!("connector name must be 1-100 characters");
    }
    if info.version.len() > 64 || semver::Version::parse(&info.version).is_err() {
        bail!(
            "connector version `{}` must be a semantic version such as 1.2.0",
            info.version
        );
    }
    // From 0.5.0, a connector that reaches its provider over HTTP only names no server.
    let fewest = if wit::speaks_http(&info.wit_version) {
        0
    } else {
        1
    };
    if info.servers.len() < fewest || info.servers.len() > 8 {
        bail!("a connector declares {fewest}-8 servers");
    }
    if info.hosts.len() > 16 {
        bail!("a connector asks for at most 16 hosts");
    }
    for host in &info.hosts {
        let name = crate::account::normalize_host(host).as_deref() == Ok(host.as_str())
            && !host.ends_with('.')
            && host.parse::<std::net::IpAddr>().is_err();
        if !name {
            bail!(
                "host `{}` is not a lower-case host name",
                host::escape_controls(host)
            );
        }
    }
    for role in &info.servers {
        if !is_slug(role, 32) || crate::account::is_reserved_role(role) {
            bail!("server role `{role}` is not a valid name");
        }
    }
    Ok(())
}

/// Reads a component file for [`Runtime::load`], refusing one over `max` bytes.
pub fn read_component(path: &Path, max: usize) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read connector {}", path.display()))?;
    if meta.len() > max as u64 {
        bail!("connector {} is larger than {max} bytes", path.display());
    }
    std::fs::read(path).with_context(|| format!("cannot read connector {}", path.display()))
}
