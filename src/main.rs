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
            eprintln!("jiancha: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line: whitespace (DataFusion's messages
/// span lines) collapsed, and a cause left out when the text so far already
/// says it (wrapped errors often repeat their source's message).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if s.is_empty() || out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}
