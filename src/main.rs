//! `echobench`: compare echo-server concurrency models, and render the reports. The command
//! line lives in the library ([`echobench::cli`]); see there for the exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    echobench::cli::main_with_args(std::env::args_os())
}
