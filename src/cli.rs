//! Command line: `run` (the default), `check-config`, `simulate`, `demo`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Upbit's real-time WebSocket feed as Prometheus metrics and an HTTP control/data API.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Configuration file layered over the defaults (for `run` without the subcommand).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect to Upbit and serve /metrics, /healthz, /readyz and /api/v1 (the default).
    Run,
    /// Load and validate the configuration, print the effective subscription, and exit.
    CheckConfig,
    /// Serve an offline Upbit simulator (WebSocket, market list, fault injection).
    Simulate(crate::simulator::cli::SimulateArgs),
    /// Start the simulator and the service against it: live metrics with no network.
    Demo(DemoArgs),
}

/// Options of `upbit-exporter demo`: the simulator's options, and where the service listens.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the service's HTTP server listens (port 0 picks a free port; the chosen address is
    /// printed).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub http: std::net::SocketAddr,
    #[command(flatten)]
    pub simulator: crate::simulator::cli::SimulateArgs,
}
