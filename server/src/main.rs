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
    let config = ticket_server::Config::parse();
    // TOKIO_WORKER_THREADS sets this; a fleet under a CPU quota sets it to
    // the quota's CPUs, and its tests read this line to see it took.
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!("tokio runtime with {workers} workers");
    // Handlers first: a SIGTERM that arrives once we have announced the
    // address must start a graceful shutdown, not kill the process.
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(config.listen).await?;
    // Without --admin-token, `run` writes the one in use (generated, or on
    // the shared stack the fleet's) to this file before it serves: the path
    // is printed, never the value.
    if let Some(path) = ticket_server::admin_token::file(&config, listener.local_addr()?.port()) {
        println!("admin token in {}", path.display());
    }
    // Scripts and tests read this line to find the port when --listen ends in :0.
    println!("listening on http://{}", listener.local_addr()?);
    ticket_server::run(config, listener, shutdown).await
}

/// Installs the SIGTERM and Ctrl-C handlers now and returns a future that
/// resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
