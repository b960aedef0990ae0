use std::process::ExitCode;

use clap::Parser;
use tracer::cli::{Cli, Command};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Attach(args) => tracer::session::attach(&args),
        Command::Inspect(args) => tracer::inspect::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tracer: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
