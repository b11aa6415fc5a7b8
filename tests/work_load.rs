//! loadgen's `--work` against every Rust TCP model (through `echobench serve`, which is
//! `echo-server`; loadgen in this process): a mix of costs, pipelined, comes back verified byte
//! for byte, each class measured apart, and the server refuses nothing.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use echo_server::models::ClientsAtOnce;
use echo_server::{Model, Transport};
use loadgen::work::WorkSpec;
use loadgen::Options;

const BIN: &str = env!("CARGO_BIN_EXE_echobench");

#[test]
fn every_model_serves_a_mix_of_costs_that_loadgen_verifies_class_by_class() {
    let spec = WorkSpec::parse("cpu=0;20%:cpu=200us;10%:wait=2ms,cpu=50us").unwrap();
    for model in Model::of(Transport::Tcp) {
        if model == Model::IoUring && !testkit::io_uring_allowed() {
            eprintln!("skipped io-uring: the kernel refuses io_uring to this process");
            continue;
        }
        let mut server = testkit::spawn_listening(
            Command::new(BIN)
                .args(["serve", "--", model.name()])
                .args(["--addr", "127.0.0.1:0", "--work", "--workers", "4"])
                .stderr(Stdio::piped()),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", model.name()));
        let mut o = Options::new(server.addr);
        o.connections = 4;
        o.pipeline = 2;
        o.size = 200;
        o.threads = Some(1);
        o.warmup = Duration::from_millis(100);
        o.duration = Duration::from_millis(500);
        o.work = Some(spec.clone());
        let report = loadgen::run(&o).unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(server.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert!(server.child.wait().unwrap().success(), "{}", model.name());
        let said = server.stderr_to_end();
        let name = model.name();
        assert_eq!(report.errors.total(), 0, "{name}: {:?}", report.errors);
        let work = report.work.as_ref().unwrap();
        assert_eq!(work.classes.len(), 3, "{name}");
        for class in &work.classes {
            assert!(class.messages > 0, "{name}: no request of {}", class.spec);
            assert!(class.latency_us.p50 > 0.0, "{name}: {}", class.spec);
        }
        let sum: u64 = work.classes.iter().map(|c| c.messages).sum();
        assert_eq!(sum, report.messages, "{name}");
        // A request that waits 2 ms takes at least that.
        assert!(work.classes[2].latency_us.min >= 2000.0, "{name}: {work:?}");
        let one_at_a_time = model.info().clients_at_once == ClientsAtOnce::One;
        let starved = if one_at_a_time { o.connections - 1 } else { 0 };
        assert_eq!(report.connections_starved, starved, "{name}");
        assert!(
            said.contains("echo-server: work: 0 bad magic, 0 length out of range, 0 cost over"),
            "{name}: {said}"
        );
    }
}
