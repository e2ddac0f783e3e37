//! The `cairn` binary: all the work is in the library; this only exits with its code.
#![forbid(unsafe_code)]

fn main() {
    // Unlocked handles: the agent runs inside `run`, and its log lines are written to
    // stdout from other threads (actix workers, DNS). Holding `stdout.lock()` here for the
    // whole run made the first log line from any other thread block that thread forever
    // (one malformed HTTP request, which actix logs, wedged an HTTP worker).
    let code = cairn::cli::run(
        std::env::args_os().collect(),
        &mut cairn::cli::Output {
            out: &mut std::io::stdout(),
            err: &mut std::io::stderr(),
        },
    );
    std::process::exit(code);
}
