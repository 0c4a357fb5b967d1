//! The `jiancha` binary: parse, run, and turn any error into one line on
//! stderr and a non-zero exit status.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc: the replay pipeline frees on one thread what it allocated on
/// another, which glibc malloc handles poorly.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
