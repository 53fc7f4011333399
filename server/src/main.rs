//! Run with: `cargo run --release -p ticket-server -- --admin-token T`
//! (`--help` lists every flag and its environment variable).

use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let mut config = ticket_server::Config::parse();
    if let Some(token) = config.ensure_admin_token() {
        println!("admin token (generated): {token}");
    }
    let listener = TcpListener::bind(config.listen).await?;
    // Scripts and tests read this line to find the port when --listen ends in :0.
    println!("listening on http://{}", listener.local_addr()?);
    ticket_server::run(config, listener, shutdown_signal()).await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
