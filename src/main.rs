//! The `earshot` command line: parses flags, runs one subcommand, prints the
//! whole error chain and maps outcomes to exit codes.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", cli::exit::render(&err));
            cli::exit::classify(&err).into()
        }
    }
}
