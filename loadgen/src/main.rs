//! `loadgen`: drive an echo server and report throughput and latency ([`loadgen::cli`]).

fn main() -> std::process::ExitCode {
    loadgen::cli::main_with_args(std::env::args_os())
}
