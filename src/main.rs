//! The `jiancha` binary: parse, run, and turn any error into one line on
//! stderr and a non-zero exit status.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = jiancha::cli::Cli::parse();
    match jiancha::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jiancha: {e:#}");
            ExitCode::FAILURE
        }
    }
}
