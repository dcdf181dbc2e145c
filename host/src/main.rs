//! The `mailroom` command.

use clap::{Parser, Subcommand};
use mailroom::{Config, Server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "mailroom", version, about = "The email back end of a CRM")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address the HTTP API listens on [default: 127.0.0.1:8025].
    #[arg(long, env = "MAILROOM_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory [default: ./mailroom-data].
    #[arg(long, env = "MAILROOM_DATA")]
    data: Option<PathBuf>,
    /// Extra trusted certificates (PEM) for mail and API servers.
    #[arg(long, env = "MAILROOM_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Configuration file (TOML) for everything else.
    #[arg(long, env = "MAILROOM_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,cranelift=warn,wasmtime=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mailroom: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailroom: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(data) = args.data {
        config.data = data;
    }
    if let Some(ca_file) = args.ca_file {
        config.ca_file = Some(ca_file);
    }
    let admin_token = match std::env::var("MAILROOM_ADMIN_TOKEN") {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        _ => {
            let token = mailroom::api::auth::new_token();
            eprintln!(
                "Admin token (shown once; set MAILROOM_ADMIN_TOKEN to choose your own): {token}"
            );
            token
        }
    };
    let server = Server::start(&config, &admin_token).await?;
    shutdown_signal().await?;
    tracing::info!("shutting down");
    server.stop().await;
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
