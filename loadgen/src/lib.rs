//! loadgen: the load generator shared by every echobench run.
//!
//! It drives an echo server over TCP (or UDP, [`udp`]) in a closed loop (`--pipeline` messages in flight per
//! connection), an open loop (a fixed schedule at `--rate`, latency from the intended send
//! time, so a stalled server cannot hide behind the load generator waiting for it), or churn
//! (one connection per message). Every echoed byte is verified; latency is recorded in
//! nanoseconds in HdrHistogram, one histogram per worker thread, merged with `add`.
//!
//! [`run`] does a whole run from [`Options`] and returns the [`Report`] that `--json` writes.

pub mod agent;
pub mod attack;
pub mod chat;
pub mod cli;
pub mod engine;
pub mod hlog;
pub mod lines;
pub mod load;
pub mod machine;
pub mod numbers;
pub mod options;
pub mod payload;
pub mod record;
pub mod report;
pub mod rng;
pub mod source;
pub mod tls;
pub mod udp;
pub mod work;

pub use load::run;
pub use machine::{
    affinity_cpus, format_cpus, local_port_range, original_fd_limit, parse_cpus, raise_fd_limit,
};
pub use options::{
    parse_count, parse_scaled, Options, DEFAULT_HLOG_INTERVAL, MAX_SIZE, MIN_HLOG_INTERVAL,
};
pub use report::{
    from_unix_ns, new_histogram, unix_ns, Arrivals, AttackReport, ChatReport, Datagrams, Errors,
    FindRate, Handshakes, KernelDrops, Latency, Mode, Report, Slo, Step, WorkClass, WorkReport,
};
pub use tls::{TlsInfo, TlsOptions, Trust};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_import_one_way() {
        // TLS and the machine's facts first, then the report and its formats, the payloads,
        // what a worker records, the TCP engine that drives the load and the UDP one built on
        // its plan, the interval logs written from their results, a run's options, a whole
        // run, the agent mode around it, and the command line.
        const LAYERS: [&[&str]; 11] = [
            &["tls", "machine", "rng", "lines", "source", "numbers"],
            &["report", "payload", "work", "attack"],
            &["record"],
            &["engine"],
            &["udp"],
            &["hlog"],
            &["options"],
            &["chat"],
            &["load"],
            &["agent"],
            &["cli"],
        ];
        testkit::modgraph::assert_one_way(env!("CARGO_MANIFEST_DIR"), &LAYERS);
    }

    #[test]
    fn counts_take_k_and_m_suffixes() {
        assert_eq!(parse_count("16"), Ok(16));
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("1.5M"), Ok(1_500_000));
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("lots").is_err());
    }

    #[test]
    fn cpu_lists_take_ranges_and_print_back() {
        assert_eq!(parse_cpus("0-3,8"), Ok(vec![0, 1, 2, 3, 8]));
        assert_eq!(format_cpus(&[0, 1, 2, 3, 8]), "0-3,8");
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("a").is_err());
    }

    #[test]
    fn flags_that_do_not_combine_are_refused_by_name() {
        let addr = "127.0.0.1:1".parse().unwrap();
        let mut o = Options::new(addr);
        o.rate = Some(100.0);
        o.churn = true;
        assert!(o.validate().unwrap_err().contains("--churn"));
        o.churn = false;
        o.pipeline = 4;
        assert!(o.validate().unwrap_err().contains("--pipeline"));
    }
}
