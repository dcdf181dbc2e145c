//! Server configuration: a TOML file (`--config`), overridden by flags and environment
//! variables for the settings the README names (`--listen`, `--data`, `--ca-file`).
//!
//! Every tunable is documented where it is defined, with its default.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// The data directory (database, compiled-connector cache, key file).
    pub data: PathBuf,
    /// Extra trusted certificates (PEM) for mail and API servers; a certificate listed here is
    /// also accepted when a server presents it as its own.
    pub ca_file: Option<PathBuf>,
    pub store: StoreConfig,
    pub sandbox: SandboxConfig,
    pub net: NetConfig,
    pub api: ApiConfig,
    pub connectors: ConnectorsConfig,
    pub sync: SyncConfig,
    pub push: PushConfig,
    pub oauth: OauthConfig,
    pub webhooks: WebhooksConfig,
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8025)),
            data: PathBuf::from("./mailroom-data"),
            ca_file: None,
            store: StoreConfig::default(),
            sandbox: SandboxConfig::default(),
            net: NetConfig::default(),
            api: ApiConfig::default(),
            connectors: ConnectorsConfig::default(),
            sync: SyncConfig::default(),
            push: PushConfig::default(),
            oauth: OauthConfig::default(),
            webhooks: WebhooksConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Config {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))
    }
}

/// Where Mailroom keeps its state.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `redb` (the default): one file in the data directory, for one server. `postgres`: a
    /// PostgreSQL database that several nodes share (`[store.postgres]`).
    pub backend: StoreBackend,
    /// redb's page cache, in MiB. Default 16 (redb's own default would be 1 GiB): a first
    /// sync fills a larger cache with message bodies it writes and never reads again (with 64,
    /// the server's peak memory during one was 50 MB higher and the sync no faster), and the
    /// system's file cache serves what the API reads past it.
    pub cache_mib: usize,
    pub postgres: PostgresConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Redb,
            cache_mib: 16,
            postgres: PostgresConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Redb,
    Postgres,
}

/// The shared database (`[store.postgres]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database` (also `--database-url`,
    /// `MAILROOM_DATABASE_URL`, which win over the file).
    pub url: Option<String>,
    /// Connections each node keeps open at most. Default 16: every read and write
    /// transaction holds one while it runs (a long-polled event request only between its
    /// looks), and write transactions take turns across the nodes anyway, so more mostly
    /// serve concurrent API reads. The server's `max_connections` must cover every node's.
    pub pool_size: usize,
    /// How long a node's accounts stay its own without a renewal, in seconds (default 30):
    /// a node renews every sixth of it, and the accounts of a node that died move to the
    /// others once it has passed.
    pub lease_secs: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 16,
            lease_secs: 30,
        }
    }
}

/// Limits of one connector job.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Linear memory a connector instance may grow to, in MiB. Default 128.
    pub memory_mib: u64,
    /// CPU time one step of a job may spend — a connection test, one sync page, one outbox
    /// item — in milliseconds: guest code, and the host's work for the guest's calls (`held`,
    /// `known`, body sinks) at its measured cost; waiting on the network does not count.
    /// Default 20,000.
    pub cpu_ms: u64,
    /// Wall-clock time a job may take in all, in milliseconds. Default 300,000.
    pub job_timeout_ms: u64,
    /// What a job may write to the log (its `log` calls, stdout and stderr), in bytes.
    /// Default 64 KiB.
    pub log_bytes: usize,
    /// Sync jobs running at once across all accounts; more wait their turn. Default 32.
    pub max_concurrent_jobs: usize,
    /// Sync jobs of one owner's personal accounts running at once, so that one user's
    /// accounts cannot hold every slot. Shared accounts are not counted. Default 4.
    pub max_jobs_per_owner: usize,
    /// Connection tests running at once across all callers, in a pool of their own so that
    /// tests never hold up sync. Default 16.
    pub max_concurrent_tests: usize,
    /// Bytes the body sinks of all jobs together keep in memory, in MiB; beyond it, and
    /// beyond one page per job, a large message is spooled to the data directory as it is
    /// written. Default 64.
    pub sink_memory_mib: u64,
    /// Bytes the body sinks of all jobs together may spool to disk, in MiB; a message that
    /// finds the spool full is tried again at a later job. Default 4096.
    pub spool_mib: u64,
    /// Folders a connector may list for one account. Default 10,000.
    pub max_folders: usize,
    /// Bytes of one folder's path or name. Default 1,024.
    pub max_folder_name_bytes: usize,
    /// Bytes of a folder's sync state as a connector returns it. Default 64 KiB.
    pub max_state_bytes: usize,
    /// Changed and removed message ids one page may carry. Default 1,000,000.
    pub max_page_ids: usize,
    /// Bytes of one message id a connector returns. Default 256.
    pub max_id_bytes: usize,
    /// Bytes of one SMTP reply text a connector reports (longer ones are cut). Default 1,024.
    pub max_reply_bytes: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            memory_mib: 128,
            cpu_ms: 20_000,
            job_timeout_ms: 300_000,
            log_bytes: 64 * 1024,
            max_concurrent_jobs: 32,
            max_jobs_per_owner: 4,
            max_concurrent_tests: 16,
            sink_memory_mib: 64,
            spool_mib: 4096,
            max_folders: 10_000,
            max_folder_name_bytes: 1024,
            max_state_bytes: 64 * 1024,
            max_page_ids: 1_000_000,
            max_id_bytes: 256,
            max_reply_bytes: 1024,
        }
    }
}

/// How connectors reach servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// Whether account servers may be on loopback or private networks. Default true (mail
    /// servers often are); link-local and metadata addresses are refused either way.
    pub allow_private_networks: bool,
    /// DNS lookup, TCP connect and TLS handshake, each, in milliseconds. Default 15,000.
    pub connect_timeout_ms: u64,
    /// One read or write on a server connection, in milliseconds. Default 60,000.
    pub io_timeout_ms: u64,
    /// Whether a connector's HTTP requests may use plain `http://` to a loopback address
    /// (for tests against local fakes). Default false: HTTPS only.
    pub http_plain_loopback: bool,
    /// Whether the hosts admins grant connectors may resolve to private or loopback
    /// addresses. Default false: a granted name (whose DNS the connector's author may
    /// control) cannot be pointed into the server's own network.
    pub http_granted_private: bool,
    /// The largest HTTP response body a connector may receive, in MiB. Default 96 (a
    /// 50 MB message in base64 inside JSON).
    pub http_max_response_mib: u64,
    /// The largest HTTP request body a connector may send, and what one job's requests in
    /// flight may hold together, in MiB. Default 64.
    pub http_max_request_mib: u64,
    /// Logged-in connections kept for an account between its jobs (connectors of
    /// `mailroom:connector@0.7.0` on give theirs back), so that a sync finds its server
    /// connection open. Default 2; 0 keeps none.
    pub keep_per_account: usize,
    /// Kept connections in all; the longest idle is closed first. Default 1,000.
    pub keep_total: usize,
    /// How long a kept connection may idle before it is closed, in seconds. Default 600,
    /// well inside the 30 minutes an IMAP server lets a session idle (RFC 9051).
    pub keep_idle_secs: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            allow_private_networks: true,
            connect_timeout_ms: 15_000,
            io_timeout_ms: 60_000,
            http_plain_loopback: false,
            http_granted_private: false,
            http_max_response_mib: 96,
            http_max_request_mib: 64,
            keep_per_account: 2,
            keep_total: 1_000,
            keep_idle_secs: 600,
        }
    }
}

/// The HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The largest request body accepted, in bytes. Default 1 MiB.
    pub max_body_bytes: u64,
    /// Connection tests one caller may start per minute. Default 20.
    pub connection_tests_per_minute: u32,
    /// Connection tests one caller may have running at once; more answer 429. Default 2.
    pub max_concurrent_tests_per_caller: usize,
    /// The most a connection test may take in all (every server, every stage), in seconds:
    /// a server that accepts and never speaks is reported as `timeout` within it. Default 30.
    pub connection_test_timeout_secs: u64,
    /// Personal accounts one user may own; more answer 409 `account_limit`. Shared accounts
    /// are not counted. Default 20.
    pub max_accounts_per_owner: usize,
    /// The most attachment bytes (decoded, all together) one message sent through the API
    /// may carry. Default 10 MiB. The send endpoint accepts a body large enough for them.
    pub max_attachment_bytes: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            connection_tests_per_minute: 20,
            max_concurrent_tests_per_caller: 2,
            connection_test_timeout_secs: 30,
            max_accounts_per_owner: 20,
            max_attachment_bytes: 10 * 1024 * 1024,
        }
    }
}

/// Connectors beyond the built-in ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorsConfig {
    /// Component files (`.wasm`) loaded at start, validated like an upload.
    pub files: Vec<PathBuf>,
    /// The largest component accepted, from a file or an upload, in MiB. Default 64:
    /// components built with JavaScript or Python toolchains carry their interpreter.
    pub max_upload_mib: usize,
}

impl Default for ConnectorsConfig {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            max_upload_mib: 64,
        }
    }
}

/// Synchronisation of accounts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// How often every active account is synced, in seconds. Default 60.
    pub interval_secs: u64,
    /// Messages one page of a folder's sync may carry. Default 500.
    pub page_messages: u32,
    /// Bytes one page may carry, in KiB; a larger message travels in parts. Default 4096.
    pub page_kib: u64,
    /// How long one job may sync before it ends and lets other accounts in (it is queued
    /// again at once when it had more to do), in seconds. Default 60.
    pub job_budget_secs: u64,
    /// After a job failed for a passing reason (the server cannot be reached, answered
    /// something unreadable, asked to slow down), the wait before the next, in seconds;
    /// each further failure in a row doubles it up to `max_retry_secs`, give or take a
    /// fifth. A server's `Retry-After` takes precedence. Default 15.
    pub first_retry_secs: u64,
    /// The longest wait between two failed jobs, in seconds. Default 1,800.
    pub max_retry_secs: u64,
    /// Failures in a row after which the account shows `error` with the reason (it keeps
    /// retrying and returns by itself). Default 3.
    pub error_after_failures: u32,
    /// How often each active folder is counted against the server (a search on the
    /// server), in minutes; a restart counts every folder at its first job. Default 15.
    pub count_every_mins: u64,
    /// How long after syncing a folder again because the server counted mail it lacks the
    /// same folder may be synced again, in minutes. Default 60.
    pub gap_refetch_mins: u64,
    /// How often a job lists the account's folders on the server (so new, renamed and
    /// removed folders show), in seconds; jobs in between sync the folders known, and a sync
    /// asked for through the API always lists. Default 300.
    pub list_every_secs: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            interval_secs: 60,
            page_messages: 500,
            page_kib: 4096,
            job_budget_secs: 60,
            first_retry_secs: 15,
            max_retry_secs: 1800,
            error_after_failures: 3,
            count_every_mins: 15,
            gap_refetch_mins: 60,
            list_every_secs: 300,
        }
    }
}

/// News from the servers as it happens, between the scheduler's syncs (docs/api.md,
/// "Push").
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Whether accounts whose connector can watch (IMAP: IDLE or NOTIFY) are watched.
    /// Default true; without it every account is polled every `[sync] interval_secs`.
    pub enabled: bool,
    /// How long one IMAP IDLE lasts before it is renewed, in seconds. Default 1,500 (25
    /// minutes); at most 1,740 (29): servers may end an IDLE after 30 minutes.
    pub renew_secs: u64,
    /// Watches started per second at most, so that thousands of accounts coming back after
    /// a restart (or after their server returned) do not log in all at once. Default 20.
    pub starts_per_sec: u32,
    /// The longest wait before a watch that failed starts again, in seconds (the first wait
    /// is 1 s, doubling). Default 60.
    pub max_retry_secs: u64,
    /// How often accounts of a connector that cannot watch are checked, in seconds, by
    /// connector id; a connector not named here is synced every `[sync] interval_secs`.
    /// Default `google = 20`, `microsoft = 20`: one `history.list` per Gmail account and
    /// one delta query per active Outlook folder when nothing changed, far within both
    /// providers' quotas.
    pub check_secs: std::collections::BTreeMap<String, u64>,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            renew_secs: 1500,
            starts_per_sec: 20,
            max_retry_secs: 60,
            check_secs: [("google".to_owned(), 20), ("microsoft".to_owned(), 20)]
                .into_iter()
                .collect(),
        }
    }
}

impl PushConfig {
    /// The longest IDLE the host asks for: RFC 2177 lets a server end one after 30 minutes.
    pub const MAX_RENEW_SECS: u64 = 29 * 60;

    /// How long one wait for news lasts before the watch renews it.
    pub fn renew(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.renew_secs.clamp(1, Self::MAX_RENEW_SECS))
    }
}

/// `GET /metrics`, the Prometheus text format.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether anyone may scrape it, without a token. Default false: an admin's or a
    /// service's token.
    pub public: bool,
}

/// Deliveries of events to the CRM's webhooks (docs/api.md, "Webhooks").
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// The wait before the first retry of a failed delivery, in seconds; each further retry
    /// waits twice as long as the one before (at most 2 hours), give or take a fifth.
    /// Default 5.
    pub first_retry_secs: f64,
    /// How long a delivery is retried, from its first attempt, before it is `failed` and the
    /// endpoint's next event goes, in hours. Default 24.
    pub max_retry_hours: f64,
    /// How long one delivery may take, connecting included, in seconds. Default 15.
    pub timeout_secs: u64,
    /// Whether webhook URLs may name loopback or private addresses (a CRM on the internal
    /// network). Default true; link-local and metadata addresses are refused either way.
    pub allow_private_networks: bool,
    /// Whether webhook URLs may be plain `http://`. Default true.
    pub allow_http: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            first_retry_secs: 5.0,
            max_retry_hours: 24.0,
            timeout_secs: 15,
            allow_private_networks: true,
            allow_http: true,
        }
    }
}

/// Accounts that sign in with OAuth 2.0 (docs/api.md, "OAuth2"): where the provider sends the
/// browser back, where the browser goes afterwards, and each provider's client.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OauthConfig {
    /// The callback URL registered with the providers. Default: `/v1/oauth/callback` on
    /// the address the API listens on.
    pub redirect_url: Option<String>,
    /// The CRM's page a browser is sent to after the callback, with `?account_id=` or
    /// `?error=`. Without it, a small built-in page says how it went.
    pub return_url: Option<String>,
    /// How long a started sign-in may take before its `state` expires, in seconds.
    /// Default 600.
    pub state_ttl_secs: u64,
    /// How long before an access token expires it is refreshed, in seconds. Default 120.
    pub refresh_margin_secs: u64,
    /// Google (the `google` connector): Gmail API.
    pub google: Option<ProviderConfig>,
    /// Microsoft (the `microsoft` connector): the Microsoft identity platform and Graph.
    pub microsoft: Option<MicrosoftConfig>,
}

impl Default for OauthConfig {
    fn default() -> Self {
        Self {
            redirect_url: None,
            return_url: None,
            state_ttl_secs: 600,
            refresh_margin_secs: 120,
            google: None,
            microsoft: None,
        }
    }
}

impl OauthConfig {
    /// The settings of the provider behind a connector id, with that provider's real
    /// endpoints wherever the file names none.
    pub fn provider(&self, connector: &str) -> Option<Provider> {
        match connector {
            "google" => self.google.as_ref().map(|c| Provider {
                client_id: c.client_id.clone(),
                client_secret: c.client_secret.clone(),
                auth_url: c.auth_url.clone().unwrap_or_else(|| GOOGLE_AUTH_URL.into()),
                token_url: c
                    .token_url
                    .clone()
                    .unwrap_or_else(|| GOOGLE_TOKEN_URL.into()),
                api_url: c.api_url.clone().unwrap_or_else(|| GOOGLE_API_URL.into()),
                scopes: vec!["https://mail.google.com/".into()],
                address_path: "/gmail/v1/users/me/profile".into(),
                address_fields: vec!["emailAddress".into()],
                extra_auth_params: vec![
                    ("access_type".into(), "offline".into()),
                    ("prompt".into(), "consent".into()),
                ],
                refresh_scopes: false,
            }),
            "microsoft" => self.microsoft.as_ref().map(MicrosoftConfig::provider),
            _ => None,
        }
    }
}

const GOOGLE_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_API_URL: &str = "https://gmail.googleapis.com";

const MICROSOFT_LOGIN_URL: &str = "https://login.microsoftonline.com";
const MICROSOFT_API_URL: &str = "https://graph.microsoft.com";

/// The Microsoft identity platform's client, as the config file gives it (docs/api.md,
/// "OAuth2"). The endpoints are `{login_url}/{tenant}/oauth2/v2.0/authorize` and `…/token`;
/// Graph is `{api_url}/v1.0`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicrosoftConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Who may sign in: `common` (work and personal accounts, the default),
    /// `organizations`, `consumers`, or one directory's tenant id or domain.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    pub login_url: Option<String>,
    pub api_url: Option<String>,
}

/// What a tenant (a GUID, a domain or a keyword) may hold unencoded in the endpoints' path.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

fn default_tenant() -> String {
    "common".into()
}

impl MicrosoftConfig {
    fn provider(&self) -> Provider {
        let login = self
            .login_url
            .as_deref()
            .unwrap_or(MICROSOFT_LOGIN_URL)
            .trim_end_matches('/');
        let tenant = utf8_percent_encode(self.tenant.trim(), PATH_SEGMENT);
        Provider {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            auth_url: format!("{login}/{tenant}/oauth2/v2.0/authorize"),
            token_url: format!("{login}/{tenant}/oauth2/v2.0/token"),
            api_url: self
                .api_url
                .as_deref()
                .unwrap_or(MICROSOFT_API_URL)
                .trim_end_matches('/')
                .to_owned(),
            scopes: ["offline_access", "Mail.ReadWrite", "Mail.Send", "User.Read"]
                .map(String::from)
                .to_vec(),
            address_path: "/v1.0/me".into(),
            // `mail` is null for a mailbox without an Exchange address of its own.
            address_fields: vec!["mail".into(), "userPrincipalName".into()],
            extra_auth_params: Vec::new(),
            refresh_scopes: true,
        }
    }
}

// The client secret is not printed.
impl std::fmt::Debug for MicrosoftConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicrosoftConfig")
            .field("client_id", &self.client_id)
            .field("tenant", &self.tenant)
            .field("login_url", &self.login_url)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// One provider's OAuth client, as the config file gives it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    /// The provider's API base, which the connector's requests go to with the account's
    /// token; tests and proxies point it elsewhere.
    pub api_url: Option<String>,
}

/// A provider's settings, complete.
#[derive(Clone)]
pub struct Provider {
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    pub api_url: String,
    pub scopes: Vec<String>,
    /// Where, under `api_url`, the provider names the mailbox's address, and in which
    /// fields of the JSON it answers.
    pub address_path: String,
    pub address_fields: Vec<String>,
    /// Parameters the provider needs on its authorization URL (Google issues no refresh
    /// token on a re-consent without `access_type=offline` and `prompt=consent`).
    pub extra_auth_params: Vec<(String, String)>,
    /// Whether a refresh names the scopes again (the Microsoft identity platform wants them).
    pub refresh_scopes: bool,
}

// The client secret is not printed.
impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("client_id", &self.client_id)
            .field("auth_url", &self.auth_url)
            .field("token_url", &self.token_url)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}
