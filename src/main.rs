//! The `jiancha` binary: parse, set up logging, run, and turn any error
//! into one line on stderr and a non-zero exit status.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc: the replay pipeline frees on one thread what it allocated on
/// another, which glibc malloc handles poorly.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's `mi_option_set` (mimalloc.h).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3): how long freed memory
/// waits before it is given back to the system, in ms.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// mimalloc's environment variable for `mi_option_allow_thp`.
#[cfg(target_os = "linux")]
const ALLOW_THP: &str = "MIMALLOC_ALLOW_THP";

fn main() -> ExitCode {
    let cli = jiancha::cli::Cli::parse();
    cli.init_logging();
    // A query frees and takes back gigabytes within seconds (hash tables
    // growing, batches): returning memory to the system after mimalloc's
    // default 10 ms made the kernel zero the same pages again and again —
    // a third of the monthly briefing's time over 10 M cases. A command
    // that ends keeps what it freed; a service gives it back after 10 s.
    let delay = if cli.serves() { 10_000 } else { -1 };
    // SAFETY: sets an option of the allocator this binary links; any value
    // is valid for this option.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, delay) };
    // mimalloc asks for transparent huge pages: every 2 MB page a service
    // touches again after giving it back is zeroed whole, though little of
    // it is used — a fifth of `run`'s CPU in a 1 M-event backfill (22–23 µs
    // an event without them, 25–26 µs with). Only mimalloc's own option,
    // read when it starts (before `main`), turns them off for the memory
    // it has already reserved: the service starts itself again with it set.
    #[cfg(target_os = "linux")]
    if cli.serves() && std::env::var_os(ALLOW_THP).is_none() {
        use std::os::unix::process::CommandExt;
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_default();
        let e = std::process::Command::new("/proc/self/exe").arg0(arg0).args(args).env(ALLOW_THP, "0").exec();
        // Only on failure: go on with huge pages.
        tracing::warn!(error = %e, "could not restart without transparent huge pages; going on with them");
    }
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
