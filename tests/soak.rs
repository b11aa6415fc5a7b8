//! `echobench soak` through the real binary: the 1-minute smoke test of its plumbing and of
//! echo integrity (a minute is too short for a verdict on growth, and the soak says so), and
//! the runner's servers (`echobench serve`) echoing through a network that slices, stalls and
//! resets.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use echobench::run::server::Server;
use echobench::schema::ServerSpec;
use testkit::faultproxy::{Direction, FaultProxy, Faults, Slice};

const BIN: &str = env!("CARGO_BIN_EXE_echobench");

#[test]
fn a_one_minute_soak_keeps_every_echo_intact_and_writes_series_and_plots() {
    let out = std::env::temp_dir().join(format!("echobench-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(BIN)
        .args([
            "soak",
            "--minutes",
            "1",
            "--server-cpus",
            "0",
            "--loadgen-cpus",
            "1",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let found: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("soak.json")).unwrap()).unwrap();
    let servers = found.as_array().unwrap();
    assert!(servers.len() >= 9, "{} servers soaked", servers.len());
    for s in servers {
        let name = s["server"].as_str().unwrap();
        assert_eq!(s["verdict"], "no-verdict", "{name}: {s}");
        assert!(s["messages"].as_u64().unwrap() > 50_000, "{name}: {s}");
        assert!(s["churned"].as_u64().unwrap() > 1_000, "{name}: {s}");
        assert_eq!(s["churn_failed"], 0, "{name}: {s}");
        let series = std::fs::read_to_string(out.join(format!("{name}.csv"))).unwrap();
        assert!(
            series.lines().count() > 50,
            "{name}: {} samples",
            series.lines().count()
        );
        assert!(std::fs::read_to_string(out.join(format!("{name}.svg")))
            .unwrap()
            .starts_with("<svg"));
    }
    assert!(stdout.contains("too short for that verdict"), "{stdout}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn the_runners_servers_echo_exactly_through_sliced_and_stalled_streams_and_outlive_a_reset() {
    let sliced = Faults {
        to_server: Direction {
            slice: Slice::Random { max: 300 },
            pace: Duration::from_micros(20),
            stall: Some((4096, Duration::from_millis(100))),
        },
        to_client: Direction {
            slice: Slice::Bytes1,
            ..Direction::default()
        },
        ..Faults::default()
    };
    let resetting = Faults {
        reset_after: Some(1000),
        ..Faults::default()
    };
    let log = std::env::temp_dir().join(format!("echobench-faults-{}.log", std::process::id()));
    for model in ["blocking", "mio", "fork-per-client"] {
        let cpus = [loadgen::affinity_cpus()[0]];
        let mut server =
            Server::start(Path::new(BIN), &ServerSpec::model(model), &cpus, &log).unwrap();
        let target = server.addr;
        let data: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
        for (faults, survives) in [(resetting, false), (sliced, true)] {
            let proxy = FaultProxy::start(target, faults).unwrap();
            let mut client = TcpStream::connect(proxy.addr).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            client
                .set_write_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let written = client.write_all(&data);
            let _ = client.shutdown(std::net::Shutdown::Write);
            let mut echo = Vec::new();
            let read = client.read_to_end(&mut echo);
            if survives {
                written.unwrap();
                read.unwrap();
                assert!(echo == data, "{model}: echo differs");
            } else {
                assert_eq!(proxy.resets(), 1, "{model}");
                assert!(echo.len() < data.len(), "{model}: echoed past the reset");
            }
        }
        // SIGTERM: it exits 0, in time, leaving nothing behind.
        let stopped = server.stop();
        assert!(stopped.failure.is_none(), "{model}: {stopped:?}");
        assert!(
            stopped.notes.iter().all(|n| n.starts_with("server took")),
            "{model}: {stopped:?}"
        );
    }
    let _ = std::fs::remove_file(log);
}
