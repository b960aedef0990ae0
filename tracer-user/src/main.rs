use std::process::ExitCode;

use clap::Parser;
use tracer::cli::{Cli, Command};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Attach(args) => tracer::session::attach(&args),
        Command::Inspect(args) => tracer::inspect::run(&args),
        Command::Record(args) => tracer::session::record(args),
        Command::Replay(args) => tracer::session::replay::replay(&args),
        Command::Export(args) => tracer::session::replay::export(&args),
        Command::Report(args) => match tracer::session::report(&args) {
            // Suspects found with --fail-on-suspects: 2, as errors are 1.
            Ok(true) if args.fail_on_suspects => return ExitCode::from(2),
            other => other.map(|_| ()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tracer: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
