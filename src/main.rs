//! Entry point: parse the command line, load settings, run, map errors to exit codes
//! (0 clean stop, 1 runtime failure, 2 invalid configuration).

use std::process::ExitCode;

use clap::Parser;
use upbit_exporter::cli::{Cli, Command};
use upbit_exporter::settings::{Settings, Sources};
use upbit_exporter::{app, shutdown_signal};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
                for (data_type, codes) in settings.upbit.subscription().entries() {
                    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
                    println!("{data_type}: {}", codes.join(","));
                }
                ExitCode::SUCCESS
            }
            Err(err) => config_error(err),
        },
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

fn config_error(err: upbit_exporter::settings::SettingsError) -> ExitCode {
    eprintln!("upbit-exporter: {err}");
    ExitCode::from(2)
}
