//! Entry point: parse the command line, load settings, run, map errors to exit codes
//! (0 clean stop, 1 runtime failure, 2 invalid configuration).

use std::process::ExitCode;

use clap::Parser;
use upbit_exporter::cli::{Cli, Command, DemoArgs};
use upbit_exporter::settings::{Settings, Sources};
use upbit_exporter::simulator::cli::SimulateArgs;
use upbit_exporter::{app, shutdown_signal};

/// `info` unless `RUST_LOG` says otherwise, and actix-http's HTTP/1 dispatcher silenced: it
/// logs every malformed request a client sends at ERROR, unthrottled, so any client could flood
/// the log at the level that means "an operator must act". Those requests are answered (400,
/// 431) or dropped by actix-http before routing; naming the module in `RUST_LOG` turns its
/// lines back on (`RUST_LOG=info,actix_http::h1=debug`).
fn init_logging() {
    let mut logger = env_logger::Builder::new();
    logger
        .filter_level(log::LevelFilter::Info)
        .filter_module("actix_http::h1", log::LevelFilter::Off);
    if let Ok(filters) = std::env::var("RUST_LOG") {
        logger.parse_filters(&filters);
    }
    if let Ok(style) = std::env::var("RUST_LOG_STYLE") {
        logger.parse_write_style(&style);
    }
    logger.init();
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let load = || {
        Settings::load(Sources {
            file: cli.config.as_deref(),
            env: std::env::vars().collect(),
        })
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => match load() {
            Ok(settings) => {
                println!("configuration is valid");
                println!("url: {}", settings.upbit.url);
                println!("format: {}", settings.upbit.format);
                match settings.nats.enabled() {
                    true => println!(
                        "nats: {} stream={} subjects={}.>",
                        settings.nats.redacted_url(),
                        settings.nats.stream,
                        settings.nats.subject_prefix
                    ),
                    false => println!("nats: off"),
                }
                for (data_type, codes) in settings.upbit.subscription().entries() {
                    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
                    println!("{data_type}: {}", codes.join(","));
                }
                ExitCode::SUCCESS
            }
            Err(err) => config_error(err),
        },
        Command::Simulate(args) => match actix_rt::System::new().block_on(simulate(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("upbit-exporter simulate: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Demo(args) => demo(args, cli.config.as_deref()),
        Command::Run => {
            let settings = match load() {
                Ok(settings) => settings,
                Err(err) => return config_error(err),
            };
            actix_rt::System::new().block_on(async move {
                let handle = match app::start(settings).await {
                    Ok(handle) => handle,
                    Err(err) => {
                        log::error!("{err}");
                        return ExitCode::FAILURE;
                    }
                };
                shutdown_signal().await;
                handle.shutdown().await;
                ExitCode::SUCCESS
            })
        }
    }
}

async fn simulate(args: SimulateArgs) -> std::io::Result<()> {
    upbit_exporter::simulator::cli::run(args).await
}

/// The simulator and the service together, for a first look without network access. The
/// simulator starts first, so the service is pointed at the address it actually bound (port 0
/// picks a free one), and the printed addresses are the real ones.
fn demo(args: DemoArgs, config: Option<&std::path::Path>) -> ExitCode {
    actix_rt::System::new().block_on(async move {
        let simulator = match args.simulator.start().await {
            Ok(simulator) => simulator,
            Err(err) => {
                log::error!("cannot start the simulator on {}: {err}", args.simulator.listen);
                return ExitCode::FAILURE;
            }
        };
        let url = simulator.ws_url();
        let mut env: Vec<(String, String)> = std::env::vars().collect();
        for (key, value) in [
            ("UPBIT_EXPORTER__UPBIT__URL", url.as_str()),
            (
                "UPBIT_EXPORTER__UPBIT__TYPES",
                "ticker,trade,orderbook,candle.1m",
            ),
            ("UPBIT_EXPORTER__HTTP__LISTEN", &args.http.to_string()),
        ] {
            env.push((key.to_owned(), value.to_owned()));
        }
        let settings = match Settings::load(Sources { file: config, env }) {
            Ok(settings) => settings,
            Err(err) => {
                simulator.stop().await;
                return config_error(err);
            }
        };
        let handle = match app::start(settings).await {
            Ok(handle) => handle,
            Err(err) => {
                log::error!("{err}");
                simulator.stop().await;
                return ExitCode::FAILURE;
            }
        };
        let http = handle.http_url();
        println!("demo: simulator on {url}");
        println!("demo: live page {http}/  metrics {http}/metrics  status {http}/api/v1/status  markets {http}/api/v1/markets");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        shutdown_signal().await;
        handle.shutdown().await;
        simulator.stop().await;
        ExitCode::SUCCESS
    })
}

fn config_error(err: upbit_exporter::settings::SettingsError) -> ExitCode {
    eprintln!("upbit-exporter: {err}");
    ExitCode::from(2)
}
