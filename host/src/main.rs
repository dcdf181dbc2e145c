//! The `mailroom` command: the server, and the operator's tools that work on its database.

use clap::{Args, Parser, Subcommand};

use mailroom::clock::now_rfc3339;
use mailroom::config::StoreBackend;
use mailroom::connector::ConnectorInfo;
use mailroom::connectors;
use mailroom::id::new_id;
use mailroom::net::TlsPolicy;
use mailroom::runtime::{Runtime, read_component};
use mailroom::server::open_state;
use mailroom::store::{Store, copy};
use mailroom::user::{Role, Token, TokenHash, TokenOwner, User, new_token};
use mailroom::{Bootstrap, Config, Server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "mailroom", version, about = "The email back end of a CRM")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to standard error: `text` for people, `json` (one object
    /// a line, with the span fields: request id, account, connector, job) for log shippers.
    #[arg(
        long,
        global = true,
        env = "MAILROOM_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve(ServeArgs),
    /// Adds or lists users (the server must not be running on the same data directory).
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Creates or revokes API tokens, for users or for services such as the CRM.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Loads, lists or removes connectors: through a running server's API with `--url`,
    /// else in the data directory (no server may be running on it).
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Manages the key that seals stored passwords.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Moves a deployment between the embedded store and PostgreSQL.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copies everything from one store into another, empty one, and checks both hold the
    /// same (entries and a checksum of every table). Each side is a data directory (its
    /// `mailroom.redb`) or a `postgres://` URL; no server may be running on either. Sealed
    /// passwords move as they are: the servers on the other side need the same secret key.
    Copy {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
}

#[derive(Args)]
struct StateArgs {
    /// Data directory [default: ./mailroom-data].
    #[arg(long, env = "MAILROOM_DATA", global = true)]
    data: Option<PathBuf>,
    /// A PostgreSQL database to use instead of the data directory's file.
    #[arg(
        long,
        env = "MAILROOM_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Configuration file (TOML).
    #[arg(long, env = "MAILROOM_CONFIG", global = true)]
    config: Option<PathBuf>,
}

/// A running server to talk to instead of the data directory.
#[derive(Args)]
struct RemoteArgs {
    /// The server's API, e.g. http://127.0.0.1:8025.
    #[arg(long, env = "MAILROOM_URL", global = true)]
    url: Option<String>,
    /// An admin's token for `--url`.
    #[arg(long, env = "MAILROOM_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum ConnectorCommand {
    /// Loads a connector from its component (`.wasm`) and prints what it is.
    Add {
        file: PathBuf,
        /// Replaces the uploaded connector of the same id.
        #[arg(long)]
        replace: bool,
    },
    /// Lists the connectors.
    List,
    /// Removes an uploaded connector.
    Remove {
        id: String,
        /// Even while accounts use it: they are disabled.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Adds a user and prints its id.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        /// `admin` or `member`.
        #[arg(long, default_value = "member")]
        role: String,
        /// May work shared accounts.
        #[arg(long)]
        shared_inbox: bool,
        /// The CRM's id for the user.
        #[arg(long)]
        external_id: Option<String>,
    },
    /// Lists users.
    List,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Creates a token and prints it once.
    Create {
        /// The user the token is for.
        #[arg(long, conflicts_with = "service", required_unless_present = "service")]
        user: Option<String>,
        /// A service identity (e.g. `crm`) that may act as any user with X-Mailroom-User.
        #[arg(long)]
        service: Option<String>,
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// Revokes a token by its id.
    Revoke { id: String },
    /// Lists the tokens of a user or a service: ids, names and times, never a secret.
    List {
        #[arg(long, conflicts_with = "service", required_unless_present = "service")]
        user: Option<String>,
        #[arg(long)]
        service: Option<String>,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Seals every stored secret under a new key. With a key file, a new key is generated and
    /// the old one removed afterwards; with MAILROOM_SECRET_KEY, put the new key first
    /// (`new,old`) and drop the old one once this has run.
    Rotate,
}

#[derive(Args)]
struct ServeArgs {
    /// Address the HTTP API listens on [default: 127.0.0.1:8025].
    #[arg(long, env = "MAILROOM_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory [default: ./mailroom-data].
    #[arg(long, env = "MAILROOM_DATA")]
    data: Option<PathBuf>,
    /// The PostgreSQL database several nodes share (`postgres://user:password@host/db`),
    /// instead of the embedded file; the same as `[store] backend = "postgres"` with
    /// `[store.postgres] url`.
    #[arg(long, env = "MAILROOM_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Extra trusted certificates (PEM) for mail and API servers.
    #[arg(long, env = "MAILROOM_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Configuration file (TOML) for everything else.
    #[arg(long, env = "MAILROOM_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,cranelift=warn,wasmtime=warn".into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mailroom: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::User { command, state } => user(command, state).await,
            Command::Token { command, state } => token(command, state).await,
            Command::Connector {
                command,
                state,
                remote,
            } => connector(command, state, remote).await,
            Command::Secrets { command, state } => secrets(command, state).await,
            Command::Store { command } => store(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailroom: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn load_config(
    path: Option<&PathBuf>,
    data: Option<PathBuf>,
    database_url: Option<String>,
) -> anyhow::Result<Config> {
    let mut config = match path {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(data) = data {
        config.data = data;
    }
    if let Some(url) = database_url {
        config.store.backend = StoreBackend::Postgres;
        config.store.postgres.url = Some(url);
    }
    Ok(config)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.config.as_ref(), args.data, args.database_url)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(ca_file) = args.ca_file {
        config.ca_file = Some(ca_file);
    }
    let setup = Bootstrap {
        admin_token: env("MAILROOM_ADMIN_TOKEN"),
        service_token: env("MAILROOM_SERVICE_TOKEN"),
        secret_key: env("MAILROOM_SECRET_KEY"),
    };
    let server = Server::start(&config, &setup).await?;
    if let Some(token) = server.first_admin_token()
        && setup.admin_token.is_none()
    {
        eprintln!("First start: the admin's token (shown once) is {token}");
    }
    shutdown_signal().await?;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}

/// The database of a data directory that no server is running on.
async fn open(state: &StateArgs) -> anyhow::Result<Arc<dyn Store>> {
    let config = load_config(
        state.config.as_ref(),
        state.data.clone(),
        state.database_url.clone(),
    )?;
    let (store, _) = open_state(&config, env("MAILROOM_SECRET_KEY").as_deref()).await?;
    Ok(store)
}

async fn connector(
    command: ConnectorCommand,
    state: StateArgs,
    remote: RemoteArgs,
) -> anyhow::Result<()> {
    match remote.url {
        Some(url) => {
            let token = remote
                .token
                .ok_or_else(|| anyhow::anyhow!("--url needs an admin's --token"))?;
            connector_remote(command, url.trim_end_matches('/'), &token).await
        }
        None => connector_local(command, &state).await,
    }
}

/// Through the API of the server at `url`.
async fn connector_remote(command: ConnectorCommand, url: &str, token: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let request = match &command {
        ConnectorCommand::Add { file, replace } => {
            let component = std::fs::read(file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            http.post(format!("{url}/v1/connectors?replace={replace}"))
                .header("content-type", "application/wasm")
                .body(component)
        }
        ConnectorCommand::List => http.get(format!("{url}/v1/connectors?limit=500")),
        ConnectorCommand::Remove { id, force } => {
            http.delete(format!("{url}/v1/connectors/{id}?force={force}"))
        }
    };
    let response = request.bearer_auth(token).send().await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        anyhow::bail!(
            "the server refused ({status}): {}",
            answer["error"]["message"].as_str().unwrap_or(&body)
        );
    }
    match command {
        ConnectorCommand::List => {
            let page: serde_json::Value = serde_json::from_str(&body)?;
            for info in page["items"].as_array().into_iter().flatten() {
                let info: ConnectorInfo = serde_json::from_value(info.clone())?;
                print_connector(&info);
            }
        }
        ConnectorCommand::Add { .. } => print_connector(&serde_json::from_str(&body)?),
        ConnectorCommand::Remove { id, .. } => println!("removed {id}"),
    }
    Ok(())
}

/// In the data directory, with the same checks as the API.
async fn connector_local(command: ConnectorCommand, state: &StateArgs) -> anyhow::Result<()> {
    let config = load_config(
        state.config.as_ref(),
        state.data.clone(),
        state.database_url.clone(),
    )?;
    let (store, _) = open_state(&config, env("MAILROOM_SECRET_KEY").as_deref())
        .await
        .map_err(|e| {
            anyhow::anyhow!("{e:#} (is a server running on it? then pass --url and --token)")
        })?;
    let runtime = Runtime::new(
        &config.sandbox,
        &config.net,
        &config.connectors,
        TlsPolicy::new(config.ca_file.as_deref())?,
        Some(&config.data),
        Default::default(),
    )
    .await?;
    connectors::load_installed(store.as_ref(), &runtime).await?;
    match command {
        ConnectorCommand::Add { file, replace } => {
            let component = read_component(&file, runtime.max_component_bytes())?;
            let installed =
                connectors::install(store.as_ref(), &runtime, component, replace).await?;
            print_connector(&installed.info);
        }
        ConnectorCommand::List => {
            for info in runtime.connectors() {
                print_connector(&info);
            }
        }
        ConnectorCommand::Remove { id, force } => {
            let disabled = connectors::remove(store.as_ref(), &runtime, &id, force).await?;
            println!("removed {id}");
            for account in disabled {
                println!("disabled account {account}");
            }
        }
    }
    Ok(())
}

fn print_connector(info: &ConnectorInfo) {
    let origin = if info.builtin { "built-in" } else { "uploaded" };
    println!(
        "{}\t{}\t{}\tmailroom:connector@{}\t{origin}\t{}",
        info.id, info.version, info.name, info.wit_version, info.digest
    );
}

async fn user(command: UserCommand, state: StateArgs) -> anyhow::Result<()> {
    let store = open(&state).await?;
    match command {
        UserCommand::Add {
            name,
            email,
            role,
            shared_inbox,
            external_id,
        } => {
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role must be admin or member, not {role}"))?;
            let user = User::new(name, email, role, shared_inbox, external_id)
                .map_err(|e| anyhow::anyhow!("--{} {}", e.field.replace('_', "-"), e.message))?;
            store.insert_user(user.clone()).await?;
            println!("{}", user.id);
        }
        UserCommand::List => {
            for user in store.users().await? {
                let role = user.role.as_str();
                println!(
                    "{}\t{}\t{}\t{role}{}",
                    user.id,
                    user.email,
                    user.name,
                    if user.shared_inbox {
                        "\tshared_inbox"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(())
}

async fn token(command: TokenCommand, state: StateArgs) -> anyhow::Result<()> {
    let store = open(&state).await?;
    match command {
        TokenCommand::Create {
            user,
            service,
            name,
        } => {
            let owner = match (user, service) {
                (Some(user), None) => {
                    store
                        .user(&user)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no user {user}"))?;
                    TokenOwner::User(user)
                }
                (None, Some(service)) => TokenOwner::Service(service),
                _ => anyhow::bail!("give --user or --service"),
            };
            let secret = new_token();
            let token = Token {
                id: new_id("tok"),
                owner,
                name,
                created_at: now_rfc3339(),
                last_used_at: None,
            };
            store
                .insert_token(TokenHash::of(&secret), token.clone())
                .await?;
            eprintln!("token {} (shown once):", token.id);
            println!("{secret}");
        }
        TokenCommand::Revoke { id } => match store.delete_token(&id).await? {
            Some(_) => eprintln!("revoked {id}"),
            None => anyhow::bail!("no token {id}"),
        },
        TokenCommand::List { user, service } => {
            let owner = match (user, service) {
                (Some(user), None) => TokenOwner::User(user),
                (None, Some(service)) => TokenOwner::Service(service),
                _ => anyhow::bail!("give --user or --service"),
            };
            for token in store.tokens_of(&owner).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    token.id,
                    token.name,
                    token.created_at,
                    token.last_used_at.as_deref().unwrap_or("never used")
                );
            }
        }
    }
    Ok(())
}

async fn secrets(command: SecretsCommand, state: StateArgs) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Rotate => {
            let from_env = env("MAILROOM_SECRET_KEY");
            let config = load_config(
                state.config.as_ref(),
                state.data.clone(),
                state.database_url.clone(),
            )?;
            // Opening checks the current key, so a wrong one fails before anything changes.
            let (store, _) = open_state(&config, from_env.as_deref()).await?;
            let rotated =
                mailroom::rotation::rotate(store.as_ref(), &config.data, from_env.as_deref())
                    .await?;
            eprintln!(
                "sealed {} secret(s) under key {}{}",
                rotated.count,
                rotated.key_id,
                if from_env.is_some() {
                    "; MAILROOM_SECRET_KEY may now hold the new key alone"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

async fn store(command: StoreCommand) -> anyhow::Result<()> {
    let StoreCommand::Copy { from, to } = command;
    let sums = match (Side::of(&from), Side::of(&to)) {
        (Side::Dir(from), Side::Dir(to)) => copy::copy(&embedded(&from)?, &embedded(&to)?).await?,
        (Side::Dir(from), Side::Url(to)) => {
            copy::copy(&embedded(&from)?, &shared(&to).await?).await?
        }
        (Side::Url(from), Side::Dir(to)) => {
            copy::copy(&shared(&from).await?, &embedded(&to)?).await?
        }
        (Side::Url(from), Side::Url(to)) => {
            copy::copy(&shared(&from).await?, &shared(&to).await?).await?
        }
    };
    for sum in &sums {
        println!(
            "{:<24} {:>10} entries  sha256 {}",
            sum.table, sum.entries, sum.sha256
        );
    }
    println!(
        "copied {} tables, {} entries; both sides hold the same",
        sums.len(),
        sums.iter().map(|s| s.entries).sum::<u64>()
    );
    Ok(())
}

/// One side of a copy.
enum Side {
    Dir(PathBuf),
    Url(String),
}

impl Side {
    fn of(place: &str) -> Self {
        if place.starts_with("postgres://") || place.starts_with("postgresql://") {
            Side::Url(place.to_owned())
        } else {
            Side::Dir(PathBuf::from(place))
        }
    }
}

fn embedded(dir: &std::path::Path) -> anyhow::Result<mailroom::store::kv::redb::RedbBackend> {
    mailroom::server::private_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    Ok(mailroom::store::RedbStore::open(dir, 64 << 20)?.into_backend())
}

async fn shared(url: &str) -> anyhow::Result<mailroom::store::kv::postgres::PostgresBackend> {
    Ok(mailroom::store::PostgresStore::connect(url, 4)
        .await?
        .into_backend())
}
