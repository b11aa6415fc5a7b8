//! `echo-server`: serves RFC 862 echo over TCP with the concurrency model named on the
//! command line. See `echo_server::cli` for the flags and exit codes.

fn main() -> std::process::ExitCode {
    echo_server::cli::main_with_args(std::env::args_os())
}
