//! The `cairn` binary: all the work is in the library; this only exits with its code.
#![forbid(unsafe_code)]

fn main() {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = cairn::cli::run(
        std::env::args_os().collect(),
        &mut cairn::cli::Output {
            out: &mut stdout.lock(),
            err: &mut stderr.lock(),
        },
    );
    std::process::exit(code);
}
