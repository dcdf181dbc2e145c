//! `mailroom:connector@0.1.0`: a connector that tests a connection and lists folders. It
//! introduced the host's `net`, `auth` and `log` interfaces and the shared `types`.
//!
//! These host functions are the whole network surface a connector can reach. Each checks
//! the job's account before acting; none of them ever returns a secret.

use self::mailroom::connector::{auth, log, net, types};
use super::super::host::{escape_controls, truncate};
use super::super::sandbox::{JobState, OutputCaps};
use crate::account::ConnectionSpec;
use crate::connector::{ConnectorError, ErrorKind};
use crate::endpoint::{Encryption, ServerSpec};
use crate::folder::{Folder, FolderRole};
use crate::net::Connection;
use crate::net::preauth::Protocol;
use wasmtime::component::{HasSelf, Linker, Resource};

wasmtime::component::bindgen!({
    world: "mail-connector",
    path: "../wit/0.1.0",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "mailroom:connector/net.connection": crate::net::Connection,
    },
});

use self::exports::mailroom::connector::connector as exported;

pub const VERSION: &str = "0.1.0";

pub type Pre = MailConnectorPre<JobState>;

/// How many connections one job may hold open at once.
const MAX_CONNECTIONS: usize = 16;

pub fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    MailConnector::add_to_linker::<_, HasSelf<JobState>>(linker, |state| state)
}

super::common_calls!(mailroom_connector_connector);

pub(super) type Wit<T> = wasmtime::Result<Result<T, types::Error>>;

impl types::Host for JobState {}

impl net::Host for JobState {
    async fn connect(
        &mut self,
        host: String,
        port: u16,
        encryption: types::Encryption,
    ) -> Wit<Resource<Connection>> {
        match self.open_connection(&host, port, encryption).await {
            Ok(connection) => Ok(Ok(self.hand_over(connection)?)),
            Err(error) => Ok(Err(error.into())),
        }
    }
}

impl JobState {
    async fn open_connection(
        &mut self,
        host: &str,
        port: u16,
        encryption: types::Encryption,
    ) -> Result<Connection, ConnectorError> {
        let server = self.connectable(host, port)?;
        let allow_insecure_certificate = self
            .account
            .as_ref()
            .is_some_and(|a| a.allow_insecure_certificate);
        let role = server.role.clone();
        self.last_server = Some(role.clone());
        let tls_config = self.tls.client_config(allow_insecure_certificate);
        let implicit_tls = matches!(encryption, types::Encryption::Ssl);
        Connection::open(server, implicit_tls, tls_config, &self.net)
            .await
            .map_err(|e| e.on_server(role))
    }

    /// The account's server at `host`:`port`, if the job may open one more connection.
    pub(super) fn connectable(&self, host: &str, port: u16) -> Result<ServerSpec, ConnectorError> {
        let account = self
            .account
            .as_ref()
            .ok_or_else(|| ConnectorError::new(ErrorKind::Denied, "this job serves no account"))?;
        let server = account.allow.server(host, port).cloned().ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Denied,
                format!("{host}:{port} is not one of this account's servers"),
            )
        })?;
        if self.open_connections >= MAX_CONNECTIONS {
            return Err(ConnectorError::new(
                ErrorKind::Denied,
                format!("a job may hold at most {MAX_CONNECTIONS} connections"),
            ));
        }
        Ok(server)
    }

    /// Gives the connector a connection the job holds from now on.
    pub(super) fn hand_over(
        &mut self,
        connection: Connection,
    ) -> wasmtime::Result<Resource<Connection>> {
        self.open_connections += 1;
        Ok(self.table.push(connection)?)
    }

    /// Takes a connection back from the connector (closed when dropped).
    pub(super) fn take_back(
        &mut self,
        connection: Resource<Connection>,
    ) -> wasmtime::Result<Connection> {
        let connection = self.table.delete(connection)?;
        self.open_connections -= 1;
        Ok(connection)
    }

    pub(super) fn connection(
        &mut self,
        connection: &Resource<Connection>,
    ) -> wasmtime::Result<&mut Connection> {
        Ok(self.table.get_mut(connection)?)
    }
}

impl net::HostConnection for JobState {
    async fn read(&mut self, connection: Resource<Connection>, max: u32) -> Wit<Vec<u8>> {
        let connection = self.connection(&connection)?;
        let role = connection.server.role.clone();
        Ok(connection
            .read(max as usize)
            .await
            .map_err(|e| e.on_server(role).into()))
    }

    async fn write(&mut self, connection: Resource<Connection>, data: Vec<u8>) -> Wit<()> {
        let connection = self.connection(&connection)?;
        connection.guard.observe(&data);
        let role = connection.server.role.clone();
        Ok(connection
            .write_all(&data)
            .await
            .map_err(|e| e.on_server(role).into()))
    }

    async fn start_tls(&mut self, connection: Resource<Connection>) -> Wit<()> {
        let connection = self.connection(&connection)?;
        let role = connection.server.role.clone();
        Ok(connection
            .start_tls()
            .await
            .map_err(|e| e.on_server(role).into()))
    }

    async fn is_tls(&mut self, connection: Resource<Connection>) -> wasmtime::Result<bool> {
        Ok(self.connection(&connection)?.is_tls())
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.take_back(connection)?;
        Ok(())
    }
}

impl auth::Host for JobState {
    async fn authenticate(
        &mut self,
        connection: Resource<Connection>,
        protocol: auth::Protocol,
        mechanisms: Vec<String>,
    ) -> Wit<String> {
        let protocol = match protocol {
            auth::Protocol::Imap => Protocol::Imap,
            auth::Protocol::Smtp => Protocol::Smtp,
        };
        login(self, connection, protocol, mechanisms).await
    }
}

/// A host-run login on a connector's connection, for `auth` and the later `login`.
pub(super) async fn login(
    state: &mut JobState,
    connection: Resource<Connection>,
    protocol: Protocol,
    mechanisms: Vec<String>,
) -> Wit<String> {
    let credentials = state.account.as_ref().and_then(|a| a.credentials.clone());
    let connection = state.connection(&connection)?;
    let role = connection.server.role.clone();
    let Some(credentials) = credentials else {
        return Ok(Err(ConnectorError::new(
            ErrorKind::Denied,
            "this account has no password to log in with",
        )
        .on_server(role)
        .into()));
    };
    Ok(
        crate::auth::authenticate(connection, protocol, &mechanisms, &credentials)
            .await
            .map_err(|e| e.on_server(role).into()),
    )
}

impl log::Host for JobState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if self.log_budget == 0 {
            return Ok(());
        }
        // One call is one log line: a newline or escape sequence in it cannot forge others.
        let mut message = escape_controls(&message);
        if message.len() > self.log_budget {
            let mut end = self.log_budget;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" [log budget used up]");
        }
        self.log_budget = self.log_budget.saturating_sub(message.len());
        let connector = self.connector_id.as_str();
        match level {
            log::Level::Debug => {
                tracing::debug!(target: "mailroom::connector", connector, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "mailroom::connector", connector, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "mailroom::connector", connector, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "mailroom::connector", connector, "{message}")
            }
        }
        Ok(())
    }
}

impl From<ConnectorError> for types::Error {
    fn from(error: ConnectorError) -> Self {
        use types::ErrorKind as W;
        let kind = match error.kind {
            ErrorKind::AuthFailed => W::AuthFailed,
            ErrorKind::Tls => W::Tls,
            ErrorKind::Dns => W::Dns,
            ErrorKind::Connect => W::Connect,
            ErrorKind::Timeout => W::Timeout,
            ErrorKind::Protocol => W::Protocol,
            ErrorKind::RateLimited => W::RateLimited,
            ErrorKind::NotFound => W::NotFound,
            ErrorKind::Unsupported => W::Unsupported,
            ErrorKind::Denied | ErrorKind::Connector | ErrorKind::Internal => W::Denied,
        };
        types::Error {
            kind,
            message: error.message,
            server: error.server,
            retry_after_secs: error.retry_after_secs,
        }
    }
}

impl From<types::Error> for ConnectorError {
    fn from(error: types::Error) -> Self {
        use types::ErrorKind as W;
        let kind = match error.kind {
            W::AuthFailed => ErrorKind::AuthFailed,
            W::Tls => ErrorKind::Tls,
            W::Dns => ErrorKind::Dns,
            W::Connect => ErrorKind::Connect,
            W::Timeout => ErrorKind::Timeout,
            W::Protocol => ErrorKind::Protocol,
            W::RateLimited => ErrorKind::RateLimited,
            W::NotFound => ErrorKind::NotFound,
            W::Unsupported => ErrorKind::Unsupported,
            W::Denied => ErrorKind::Denied,
        };
        ConnectorError {
            kind,
            message: truncate(error.message, 2000),
            server: error.server.map(|s| truncate(s, 64)),
            retry_after_secs: error.retry_after_secs,
        }
    }
}

impl From<types::Encryption> for Encryption {
    fn from(encryption: types::Encryption) -> Self {
        match encryption {
            types::Encryption::Ssl => Self::Ssl,
            types::Encryption::Starttls => Self::Starttls,
            types::Encryption::None => Self::None,
        }
    }
}

impl From<Encryption> for types::Encryption {
    fn from(encryption: Encryption) -> Self {
        match encryption {
            Encryption::Ssl => Self::Ssl,
            Encryption::Starttls => Self::Starttls,
            Encryption::None => Self::None,
        }
    }
}

/// The host's folders from a connector's listing, if it keeps within the caps.
pub(super) fn folders_from_wit(
    listed: Vec<types::Folder>,
    caps: &OutputCaps,
) -> Result<Vec<Folder>, ConnectorError> {
    let denied = |message: String| Err(ConnectorError::new(ErrorKind::Denied, message));
    if listed.len() > caps.max_folders {
        return denied(format!(
            "the connector listed {} folders; an account may have at most {}",
            listed.len(),
            caps.max_folders
        ));
    }
    if let Some(long) = listed
        .iter()
        .find(|f| f.path.len() > caps.max_name_bytes || f.name.len() > caps.max_name_bytes)
    {
        return denied(format!(
            "the connector listed a folder name of {} bytes; at most {} are kept",
            long.path.len().max(long.name.len()),
            caps.max_name_bytes
        ));
    }
    Ok(listed.into_iter().map(folder_from_wit).collect())
}

fn folder_from_wit(folder: types::Folder) -> Folder {
    use types::FolderRole as R;
    let role = folder.role.map(|r| match r {
        R::Inbox => FolderRole::Inbox,
        R::Sent => FolderRole::Sent,
        R::Drafts => FolderRole::Drafts,
        R::Trash => FolderRole::Trash,
        R::Spam => FolderRole::Spam,
        R::Archive => FolderRole::Archive,
        R::All => FolderRole::All,
    });
    Folder::new(folder.path, folder.name, role, folder.selectable)
}

/// The account as a connector sees it: addresses and servers, never a password.
pub(super) fn account_record(spec: &ConnectionSpec) -> types::Account {
    use types::{Account, Server};
    Account {
        email: spec.email.clone(),
        username: spec.username.clone(),
        servers: spec
            .servers
            .iter()
            .map(|s| Server {
                role: s.role.clone(),
                host: s.host.clone(),
                port: s.port,
                encryption: s.encryption.into(),
            })
            .collect(),
        settings: spec.settings.clone(),
    }
}
