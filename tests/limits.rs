//! Descriptor limits: loadgen and the runner raise their own soft limit; every server they
//! start gets the original one back (the models echobench builds raise their own). Its own
//! test binary, so that no other test has raised this process's limit first.
#![allow(clippy::unwrap_used)]

use nix::sys::resource::{getrlimit, setrlimit, Resource};

#[test]
fn a_foreign_server_gets_back_the_soft_limit_echobench_started_with() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let start = 512.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, start, hard).unwrap();

    loadgen::raise_fd_limit();
    assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap().0, hard);
    assert_eq!(loadgen::original_fd_limit(), Some((start, hard)));

    let argv = ["sh", "-c", "ulimit -Sn"].map(str::to_owned);
    let cpus = loadgen::affinity_cpus();
    let (mut cmd, _) = echobench::run::launch::command(&argv, &[], &cpus).unwrap();
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        start.to_string()
    );
}
