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
}
