//! `mesh-fixture`: the fixture MCP server's command line (`stdio`, or `http --port N`; both take
//! `--era dual|legacy|modern`).

use anyhow::Context;
use clap::{Parser, Subcommand};
use mesh_fixture::Era;
use std::io::Write;
use tokio_util::sync::CancellationToken;

/// Fixture MCP server implementing the conformance suite's server scenarios.
#[derive(Debug, Parser)]
#[command(name = "mesh-fixture", version)]
struct Cli {
    #[command(subcommand)]
    transport: Transport,
}

#[derive(Debug, Subcommand)]
enum Transport {
    /// Newline-delimited JSON-RPC on stdin/stdout; logs go to stderr only.
    Stdio {
        /// Protocol eras served: 2025-11-25 and 2026-07-28 (dual), or only one of them.
        #[arg(long, value_enum, default_value_t = Era::Dual)]
        era: Era,
    },
    /// Streamable HTTP at http://127.0.0.1:PORT/mcp. Prints `listening on <url>` once ready.
    Http {
        /// TCP port on 127.0.0.1; 0 picks a free one (read it from the printed URL).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Protocol eras served: 2025-11-25 and 2026-07-28 (dual), or only one of them.
        #[arg(long, value_enum, default_value_t = Era::Dual)]
        era: Era,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // stdout may be the MCP channel, so logs always go to stderr. `RUST_LOG` overrides the level.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mesh_fixture=info,rmcp=warn".into()),
        )
        .init();

    match cli.transport {
        Transport::Stdio { era } => mesh_fixture::serve_stdio(era).await,
        Transport::Http { port, era } => http(port, era).await,
    }
}

async fn http(port: u16, era: Era) -> anyhow::Result<()> {
    // Loopback only: the fixture is a test double, and its DNS-rebinding guard assumes it.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let url = mesh_fixture::http::url(listener.local_addr()?);
    // The readiness signal tests and scripts wait for: printed only once the port accepts.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {url}")?;
    stdout.flush()?;
    drop(stdout);

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            stop_signal().await;
            shutdown.cancel();
        }
    });
    mesh_fixture::http::serve(listener, era, shutdown).await?;
    Ok(())
}

/// Ctrl-C or SIGTERM (what test harnesses and `timeout` send).
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
