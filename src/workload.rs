//! The workloads, each in one place: what it is and how it is named ([`Workload`], its label
//! and the parsing of it), which profiles run it, the servers it runs, the connections it
//! needs, its timing, the loadgen options that make it, the report tables that show it and the
//! figure findings rank it by. Every fact is an exhaustive `match`, so a new workload that
//! forgets one does not compile; the stages after this one read the facts, never labels.
//!
//! Adding a workload: its variant and its arms here; a report table of its own, if it needs
//! one, is a [`Table`] variant here and its cell figure in `render::document`; its row in the
//! workload table of `docs/compare.md` (CONTRIBUTING.md has the whole checklist).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use loadgen::attack::AttackSpec;
use serde::{Deserialize, Serialize};

/// How thorough a comparison is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Every workload once, short runs: within 5 minutes on 2 cores.
    Quick,
    /// Longer runs, more rates, each run repeated 3 times (median and spread).
    Full,
    /// A smoke test of the whole pipeline in seconds (for tests, not for conclusions).
    #[value(hide = true)]
    Tiny,
}

impl Profile {
    /// The profile's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Full => "full",
            Profile::Tiny => "tiny",
        }
    }
}

/// Length of the intervals each run's latency, throughput and server CPU are kept in: the
/// samples the confidence intervals are computed from.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Warm-up and measured time of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Warm-up, excluded from every figure.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
}

/// One workload of the matrix, with its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "workload", rename_all = "lowercase")]
pub enum Workload {
    /// Closed loop, 64 B, this many connections.
    Pingpong {
        /// Concurrent connections.
        connections: usize,
    },
    /// Open loop at this total rate over 16 connections, 64 B.
    Rate {
        /// Offered messages per second.
        rate: f64,
    },
    /// One connection per message, 16 at a time.
    Churn,
    /// One active connection (closed loop) beside this many idle ones.
    Idle {
        /// Idle connections held open.
        idle: usize,
    },
    /// 64 KiB messages, 16 connections, closed loop.
    Bulk,
    /// Closed loop, 64 B, this many connections, against pools of blocking workers of every
    /// size of [`POOL_WORKERS`]: where a pool of N starves.
    Pool {
        /// Concurrent connections (clients).
        connections: usize,
    },
    /// UDP, closed loop, 64 B datagrams: this many sockets, each with `pipeline` datagrams in
    /// flight; loss judged after [`UDP_TIMEOUT`].
    #[serde(rename = "udp-pingpong")]
    UdpPingpong {
        /// Connected UDP sockets.
        connections: usize,
        /// Datagrams in flight per socket.
        pipeline: usize,
    },
    /// UDP, open loop at this total rate over 16 sockets, 64 B datagrams.
    #[serde(rename = "udp-rate")]
    UdpRate {
        /// Offered datagrams per second.
        rate: f64,
    },
    /// TLS, closed loop, 64 B, 16 connections (TLS-capable models).
    #[serde(rename = "tls-pingpong")]
    TlsPingpong,
    /// TLS, one connection per message (full handshake, or resumed with a ticket), 16 at a
    /// time: handshakes per second and server CPU per handshake.
    #[serde(rename = "tls-churn")]
    TlsChurn {
        /// Every connection resumes a session (`--tls-resume`).
        resumed: bool,
    },
    /// TLS, 64 KiB messages, 16 connections, closed loop.
    #[serde(rename = "tls-bulk")]
    TlsBulk,
    /// TLS, 16 long-lived connections in an open loop at [`TLS_MIXED_RATE`], beside new
    /// connections (full handshake, one echo, close) arriving at `share` % of the model's
    /// measured `tls-churn` rate: how handshakes delay everyone else.
    #[serde(rename = "tls-mixed")]
    TlsMixed {
        /// Arriving handshakes, per cent of the model's `tls-churn` handshakes per second (0:
        /// the control).
        share: u32,
    },
    /// Requests with a cost (`--work`): closed loop, each request [`WORK_COST`] of CPU work,
    /// this many connections; the server on every CPU of the comparison ([`Workload::shares_cpus`]).
    Cpu {
        /// Concurrent connections.
        connections: usize,
    },
    /// Requests with a cost: closed loop, each request a wait of [`WORK_COST`] (the
    /// paradigm's own sleep or timer), this many connections.
    Wait {
        /// Concurrent connections.
        connections: usize,
    },
    /// Requests with a cost: an open loop at [`MIXED_RATE`] over 16 connections of
    /// [`MIXED_SPEC`] (mostly light requests, a few heavy ones), the light and the heavy
    /// measured apart; the server on every CPU of the comparison.
    Mixed,
    /// The chat room (`--chat`): `connections` members in rooms of `room`, each sending
    /// [`CHAT_SIZE`]-byte messages in a closed loop, every delivery checked; deliveries/s,
    /// delivery and fan-out latency.
    Chat {
        /// Members per room.
        room: usize,
        /// Members in all: a whole number of rooms.
        connections: usize,
    },
    /// The chat room with a slow member: rooms of [`CHAT_ROOM`], [`CHAT_SLOW_MEMBERS`] members,
    /// one member of each room joining and never reading; [`CHAT_SLOW_SIZE`]-byte messages, so
    /// that every model's slow members pass their bound within the run. Whether the server
    /// drops them and the room goes on.
    #[serde(rename = "chat-slow")]
    ChatSlow,
    /// Hostile clients (`--attack`): a 16-connection open loop at [`ATTACK_RATE`] requests/s
    /// of `--work cpu=0` (the legitimate clients), beside `attack`'s clients from 127.0.0.2
    /// (none: the control), against the server without defences, or with [`DEFENCES`].
    Attack {
        /// The hostile clients.
        attack: Hostile,
        /// Whether the server runs with [`DEFENCES`].
        defended: bool,
    },
    /// The highest rate the server holds under the latency target (`--slo`): `loadgen
    /// --find-rate` over this many connections, 64 B echo, steps of [`SLO_TIMING`] from
    /// [`SLO_RATE_START`].
    Slo {
        /// Concurrent connections.
        connections: usize,
    },
}

/// The latency target of the capacity search unless `--slo` gives one: p99 within 1 ms.
pub const DEFAULT_SLO: &str = "p99=1ms";

/// The capacity search's first rate, requests/s: the search doubles from it.
pub const SLO_RATE_START: f64 = 5000.0;

/// Each step of the capacity search: its warm-up and measured time, whatever the profile's
/// (a search takes about ten steps; the full profile's 10 s steps would take minutes a model).
pub const SLO_TIMING: Timing = Timing {
    warmup: Duration::from_millis(300),
    duration: Duration::from_secs(1),
};

/// The hostile clients of an attack workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hostile {
    /// None: the control, what the legitimate clients get without an attack.
    Nobody,
    /// [`SLOWLORIS_CONNECTIONS`] connections trickling a request they never finish
    /// (`loadgen --attack slowloris:64`).
    Slowloris,
    /// [`FLOOD_RATE`] new connections a second, each closed after 100 ms
    /// (`loadgen --attack connect-flood:2000`).
    Flood,
}

impl Hostile {
    /// Every kind, the control first, in report order.
    pub const ALL: [Hostile; 3] = [Hostile::Nobody, Hostile::Slowloris, Hostile::Flood];

    /// `loadgen --attack`'s spec; `None` for the control.
    pub fn spec(self) -> Option<String> {
        match self {
            Hostile::Nobody => None,
            Hostile::Slowloris => Some(format!("slowloris:{SLOWLORIS_CONNECTIONS}")),
            Hostile::Flood => Some(format!("connect-flood:{FLOOD_RATE}")),
        }
    }

    /// The label's stem: `attack-control`, `slowloris-64`, `flood-2000`.
    pub fn stem(self) -> String {
        match self {
            Hostile::Nobody => "attack-control".to_owned(),
            Hostile::Slowloris => format!("slowloris-{SLOWLORIS_CONNECTIONS}"),
            Hostile::Flood => format!("flood-{FLOOD_RATE}"),
        }
    }
}

/// What a defended attack workload's label ends with: `slowloris-64-defended`.
const DEFENDED: &str = "-defended";

/// The legitimate clients' offered rate beside an attack, requests/s over 16 connections: an
/// open loop, so that loadgen's own CPU (one core on 2, shared with the attackers) does not
/// decide the result.
pub const ATTACK_RATE: f64 = 10_000.0;

/// The connections of `slowloris-64`.
pub const SLOWLORIS_CONNECTIONS: usize = 64;

/// The connections a second of `flood-2000`.
pub const FLOOD_RATE: u32 = 2000;

/// The server's defences in the defended attack workloads: an idle timeout, a cap per
/// address below the smallest pool compared (prefork's 16 workers: otherwise the attackers
/// still hold every worker), and the IP blocker.
pub const DEFENCES: [&str; 8] = [
    "--idle-timeout",
    "2s",
    "--per-ip-max-conns",
    "4",
    "--block-after",
    "200",
    "--block-window",
    "1s",
];

/// The shortest warm-up and measured time of an attack run (the attackers start a second
/// before the warm-up): long enough for a defended server to close the first slowloris
/// connections (2 s after their first byte) within it.
pub const ATTACK_TIMING: Timing = Timing {
    warmup: Duration::from_millis(500),
    duration: Duration::from_secs(2),
};

/// Members per room of `chat-r16-c64`, `chat-r16-c1024` and `chat-slow`.
pub const CHAT_ROOM: usize = 16;

/// Members of `chat-slow`: four rooms of [`CHAT_ROOM`].
pub const CHAT_SLOW_MEMBERS: usize = 64;

/// Size of a chat message's payload: as echo's.
pub const CHAT_SIZE: usize = 64;

/// Size of a `chat-slow` message's payload. A slow member is owed the server's queue (1 MiB
/// unless `--chat-queue`) and its socket buffers, about 1.6 MB: at 1 KiB a message, the
/// slowest room of the Python models (about 3,000 messages/s) fills that within a second,
/// where 64-byte messages would take longer than the run.
pub const CHAT_SLOW_SIZE: usize = 1024;

/// How long a chat run waits for its members' joins (a member without its `A` by then is
/// starved), and then for the measured messages' last deliveries: long enough for a forking
/// server to take 1,024 members (about a thousand forks a second on one core).
pub const CHAT_TIMEOUT: Duration = Duration::from_millis(1500);

/// The shortest warm-up and measured time of a chat run.
pub const CHAT_TIMING: Timing = Timing {
    warmup: Duration::from_millis(300),
    duration: Duration::from_millis(1200),
};

/// The long-lived connections' rate in `tls-mixed`, messages/s over 16 connections: light
/// enough that their latency shows the server's delays, not its queue, and that loadgen (one
/// core on 2) can also make the arrivals at half a model's `tls-churn` rate: at 10,000 it
/// could not, and its starved arrivals caught up in bursts.
pub const TLS_MIXED_RATE: f64 = 4000.0;

/// The shares of a model's `tls-churn` rate at which `tls-mixed` adds handshakes; 0 is the
/// control.
pub const TLS_MIXED_SHARES: [u32; 3] = [0, 25, 50];

/// Rounds of every `tls-mixed` run per pass: the control's interval and the loaded runs' need
/// repeats, made alternately within the pass.
pub const TLS_MIXED_ROUNDS: u32 = 3;

/// What each request of `cpu-1ms` and `wait-1ms` costs the server.
pub const WORK_COST: Duration = Duration::from_millis(1);

/// `mixed`'s offered rate, requests/s over 16 connections: the light requests' CPU is small
/// beside the heavy ones' (0.48 CPU seconds a second in all), so that a server on 2 CPUs keeps
/// up whatever its model, and what the light requests wait is the heavy ones' doing.
pub const MIXED_RATE: f64 = 4000.0;

/// `mixed`'s requests (`loadgen --work`): 99 % of 20 µs of CPU, 1 % of 10 ms. Class 0 (the
/// first) is the light one.
pub const MIXED_SPEC: &str = "cpu=20us;1%:cpu=10ms";

/// The shortest warm-up and measured time of a `mixed` run: a heavy request is one in a
/// hundred, so the light requests' p99 needs seconds of them (12,000 requests, 120 heavy).
pub const MIXED_TIMING: Timing = Timing {
    warmup: Duration::from_millis(500),
    duration: Duration::from_secs(3),
};

/// The shortest warm-up and measured time of the other `--work` runs.
pub const WORK_TIMING: Timing = Timing {
    warmup: Duration::from_millis(500),
    duration: Duration::from_millis(1500),
};

/// The connections of `wait-1ms` from which its warm-up is an idle run's (a thousand a
/// second): some models fork or spawn a worker per client before serving it.
const WAIT_MANY: usize = 128;

/// How long a UDP workload waits for an echo before the datagram counts as lost: the
/// loopback answers in microseconds, so 100 ms is a loss, not a slow echo.
pub const UDP_TIMEOUT: Duration = Duration::from_millis(100);

/// Datagrams in flight per socket in the pipelined UDP ping-pong: enough for batching
/// servers (`recvmmsg`, io_uring) to find several datagrams waiting.
pub const UDP_PIPELINE: usize = 8;

/// Connections of the rate, churn and bulk workloads.
pub const SIXTEEN: usize = 16;

/// Message size of the bulk workload.
pub const BULK_SIZE: usize = 64 * 1024;

/// The pool sizes the `pool` workload sweeps, for each pool of blocking workers among the
/// servers compared.
pub const POOL_WORKERS: [usize; 5] = [1, 4, 16, 64, 256];

/// The shortest warm-up and measured time of a `tls-mixed` run.
pub const TLS_MIXED_TIMING: Timing = Timing {
    warmup: Duration::from_millis(500),
    duration: Duration::from_millis(2500),
};

/// The shortest warm-up and measured time of the other TLS runs.
pub const TLS_TIMING: Timing = Timing {
    warmup: Duration::from_millis(400),
    duration: Duration::from_millis(1200),
};

/// Which of the servers compared a workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Servers {
    /// The TCP servers: the models over TCP and the external servers.
    Tcp,
    /// The UDP models (and `py-udp`).
    Udp,
    /// The models that serve TLS.
    Tls,
    /// The TCP models that speak `--work` (every built-in one, every Python one).
    Work,
    /// As [`Servers::Work`], each model that can hand its CPU work to a pool also as
    /// `MODEL+pool` (`--offload pool`), right after it.
    WorkOffload,
    /// The TCP models that serve the chat room (`--chat`: every built-in one, every Python
    /// one).
    Chat,
    /// The built-in TCP models: those with the defences (`--attack`).
    Attack,
    /// Instead of the servers as given, each pool of blocking workers among them at every
    /// size of [`POOL_WORKERS`].
    PoolSweep,
}

/// The sections of the report that hold workload tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// *Results by workload*: the TCP workloads.
    Results,
    /// *UDP*.
    Udp,
    /// *TLS*.
    Tls,
    /// *Requests with a cost*.
    Work,
    /// *The chat room: what sharing costs*.
    Chat,
    /// *Hostile clients*.
    Attack,
}

/// A table of the report: one figure per server (rows) and workload (columns), over the
/// workloads that name it in [`Workload::tables`] and ran. The cell figure is the render
/// stage's (`render::document`), by an exhaustive `match` over these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Closed-loop throughput, msgs/s.
    PingpongThroughput,
    /// Closed-loop latency p50 / p99.
    PingpongLatency,
    /// Open-loop p99, corrected and not, and the achieved share of the rate.
    Rate,
    /// Connections/s, latency p50 and connect p50.
    Churn,
    /// Server memory beside idle connections, and the active one's p99.
    Idle,
    /// 64 KiB echo, MB/s.
    Bulk,
    /// Throughput by pool size and clients.
    Pool,
    /// UDP closed-loop throughput, datagrams/s.
    UdpThroughput,
    /// UDP closed-loop latency p50 / p99.
    UdpLatency,
    /// UDP open-loop p99 and achieved share.
    UdpRate,
    /// UDP loss with its interval.
    UdpLoss,
    /// TLS throughput (churn: handshakes/s).
    TlsThroughput,
    /// CPU per handshake, server and loadgen.
    TlsHandshakeCpu,
    /// `tls-mixed`'s long-lived p99 at each rate of arriving handshakes.
    TlsMixed,
    /// Requests with a cost: requests/s.
    WorkThroughput,
    /// Requests with a cost: latency p50 / p99.
    WorkLatency,
    /// `mixed`: the light and the heavy requests' p99, and the achieved share of the rate.
    Mixed,
    /// The chat room: deliveries/s.
    ChatDeliveries,
    /// The chat room: delivery p99 / fan-out p99.
    ChatLatency,
    /// The chat room: server CPU per delivery, and peak memory.
    ChatCost,
    /// Hostile clients: the legitimate requests/s and their share of the offered rate.
    AttackRate,
    /// Hostile clients: the legitimate requests' p99.
    AttackLatency,
    /// The capacity search: the highest rate held under the latency target.
    Slo,
}

impl Table {
    /// Every table, in the order the report shows them.
    pub const ALL: [Table; 23] = [
        Table::PingpongThroughput,
        Table::PingpongLatency,
        Table::Rate,
        Table::Churn,
        Table::Idle,
        Table::Bulk,
        Table::Pool,
        Table::UdpThroughput,
        Table::UdpLatency,
        Table::UdpRate,
        Table::UdpLoss,
        Table::TlsThroughput,
        Table::TlsHandshakeCpu,
        Table::TlsMixed,
        Table::WorkThroughput,
        Table::WorkLatency,
        Table::Mixed,
        Table::ChatDeliveries,
        Table::ChatLatency,
        Table::ChatCost,
        Table::AttackRate,
        Table::AttackLatency,
        Table::Slo,
    ];

    /// The table's heading.
    pub fn title(self) -> &'static str {
        match self {
            Table::PingpongThroughput => "Pingpong: throughput (msgs/s)",
            Table::PingpongLatency => "Pingpong: latency p50 / p99 (µs)",
            Table::Rate => "Rate: p99 corrected / uncorrected (µs), achieved share of the rate",
            Table::Churn => "Churn: connections/s, latency p50, connect p50 (µs)",
            Table::Idle => "Idle: server memory PSS / RSS, and the active connection's p99",
            Table::Bulk => "Bulk (64 KiB): MB/s echoed",
            Table::Pool => "Pool: throughput (msgs/s) by pool size and clients",
            Table::UdpThroughput => "UDP ping-pong: throughput (datagrams/s)",
            Table::UdpLatency => "UDP ping-pong: latency p50 / p99 (µs)",
            Table::UdpRate => {
                "UDP rate: p99 corrected / uncorrected (µs), achieved share of the rate"
            }
            Table::UdpLoss => "UDP loss: lost / sent (95 % interval)",
            Table::TlsThroughput => "TLS: throughput (msgs/s; churn: handshakes/s)",
            Table::TlsHandshakeCpu => "TLS: CPU per handshake, server / loadgen (µs)",
            Table::TlsMixed => "tls-mixed: p99 of the long-lived connections (µs, 95 % interval) at the arriving handshakes/s",
            Table::WorkThroughput => "Requests with a cost: throughput (requests/s)",
            Table::WorkLatency => "Requests with a cost: latency p50 / p99 (µs)",
            Table::Mixed => "mixed: p99 of the light / the heavy requests (µs), achieved share of the rate",
            Table::ChatDeliveries => "Chat: deliveries/s",
            Table::ChatLatency => "Chat: delivery p99 / fan-out p99 (µs)",
            Table::ChatCost => "Chat: server CPU per delivery (µs), peak memory PSS",
            Table::AttackRate => {
                "Hostile clients: legitimate requests/s, achieved share of the offered rate"
            }
            Table::AttackLatency => "Hostile clients: legitimate p50 / p99 (µs)",
            Table::Slo => {
                "Capacity: the highest rate held under the latency target (requests/s; ≥: loadgen was the limit), steps"
            }
        }
    }

    /// The report section the table stands in.
    pub fn section(self) -> Section {
        match self {
            Table::PingpongThroughput
            | Table::PingpongLatency
            | Table::Rate
            | Table::Churn
            | Table::Idle
            | Table::Bulk
            | Table::Pool
            | Table::Slo => Section::Results,
            Table::UdpThroughput | Table::UdpLatency | Table::UdpRate | Table::UdpLoss => {
                Section::Udp
            }
            Table::TlsThroughput | Table::TlsHandshakeCpu | Table::TlsMixed => Section::Tls,
            Table::WorkThroughput | Table::WorkLatency | Table::Mixed => Section::Work,
            Table::ChatDeliveries | Table::ChatLatency | Table::ChatCost => Section::Chat,
            Table::AttackRate | Table::AttackLatency => Section::Attack,
        }
    }
}

/// The figure findings rank a workload's servers by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranked {
    /// Throughput, higher is better: closed loops and churn.
    Throughput,
    /// p99 latency, lower is better: the open loop and beside idle connections.
    P99,
}

impl Workload {
    /// The workloads of a profile over TCP, in report order.
    pub fn of_profile(profile: Profile) -> Vec<Workload> {
        let (connections, rates, idles): (&[usize], &[f64], &[usize]) = match profile {
            Profile::Quick => (&[1, 16, 128, 1024], &[10_000.0, 50_000.0], &[0, 1000, 5000]),
            Profile::Full => (
                &[1, 16, 128, 1024],
                &[5_000.0, 20_000.0, 50_000.0, 100_000.0],
                &[0, 1000, 5000, 10_000],
            ),
            Profile::Tiny => (&[1, 16], &[2_000.0], &[0, 50]),
        };
        let mut all: Vec<Workload> = connections
            .iter()
            .map(|&c| Workload::Pingpong { connections: c })
            .collect();
        all.extend(rates.iter().map(|&rate| Workload::Rate { rate }));
        all.push(Workload::Churn);
        all.extend(idles.iter().map(|&idle| Workload::Idle { idle }));
        all.push(Workload::Bulk);
        if profile == Profile::Full {
            all.extend([16, 128].map(|connections| Workload::Pool { connections }));
        }
        all
    }

    /// The UDP workloads of a profile, in report order: ping-pong over 1, 16 and 128 sockets
    /// and 16 sockets with 8 datagrams in flight each, then the open loop over 16 sockets.
    pub fn udp_of_profile(profile: Profile) -> Vec<Workload> {
        let (sockets, rates): (&[usize], &[f64]) = match profile {
            Profile::Quick => (&[1, 16, 128], &[10_000.0, 50_000.0]),
            Profile::Full => (&[1, 16, 128], &[5_000.0, 20_000.0, 50_000.0, 100_000.0]),
            Profile::Tiny => (&[1, 16], &[2_000.0]),
        };
        let mut all: Vec<Workload> = sockets
            .iter()
            .map(|&connections| Workload::UdpPingpong {
                connections,
                pipeline: 1,
            })
            .collect();
        all.push(Workload::UdpPingpong {
            connections: SIXTEEN,
            pipeline: UDP_PIPELINE,
        });
        all.extend(rates.iter().map(|&rate| Workload::UdpRate { rate }));
        all
    }

    /// The TLS workloads, in report order (every profile runs the same: their cost is in
    /// handshakes, not in rates).
    pub fn tls() -> Vec<Workload> {
        let mut all = vec![
            Workload::TlsPingpong,
            Workload::TlsChurn { resumed: false },
            Workload::TlsChurn { resumed: true },
            Workload::TlsBulk,
        ];
        all.extend(TLS_MIXED_SHARES.map(|share| Workload::TlsMixed { share }));
        all
    }

    /// The workloads of requests with a cost (`--work`), in report order (every profile runs
    /// the same: their figures are ratios between models, not curves).
    pub fn work() -> Vec<Workload> {
        vec![
            Workload::Cpu {
                connections: SIXTEEN,
            },
            Workload::Wait {
                connections: SIXTEEN,
            },
            Workload::Wait { connections: 1024 },
            Workload::Mixed,
        ]
    }

    /// The chat room's workloads (`--chat`), in report order (every profile runs the same):
    /// rooms of 16 over 64 and 1,024 members, one room of 128, and rooms of 16 with a slow
    /// member each.
    pub fn chat() -> Vec<Workload> {
        vec![
            Workload::Chat {
                room: CHAT_ROOM,
                connections: CHAT_SLOW_MEMBERS,
            },
            Workload::Chat {
                room: 128,
                connections: 128,
            },
            Workload::Chat {
                room: CHAT_ROOM,
                connections: 1024,
            },
            Workload::ChatSlow,
        ]
    }

    /// The hostile clients' workloads (`--attack`), in report order (every profile runs the
    /// same): the control, then each attack without defences and with them.
    pub fn attack() -> Vec<Workload> {
        let mut all = vec![Workload::Attack {
            attack: Hostile::Nobody,
            defended: false,
        }];
        for attack in [Hostile::Slowloris, Hostile::Flood] {
            all.extend([false, true].map(|defended| Workload::Attack { attack, defended }));
        }
        all
    }

    /// The capacity search's workloads (`--slo`): over 16 connections, and in the full
    /// profile over 1,024 too.
    pub fn slo(profile: Profile) -> Vec<Workload> {
        match profile {
            Profile::Full => vec![
                Workload::Slo {
                    connections: SIXTEEN,
                },
                Workload::Slo { connections: 1024 },
            ],
            Profile::Quick | Profile::Tiny => vec![Workload::Slo {
                connections: SIXTEEN,
            }],
        }
    }

    /// Every workload a profile knows, over TCP, UDP and TLS, with and without a cost, the
    /// chat room's, the hostile clients' and the capacity search's, in report order.
    pub fn all_of_profile(profile: Profile) -> Vec<Workload> {
        let mut all = Workload::of_profile(profile);
        all.extend(Workload::slo(profile));
        all.extend(Workload::udp_of_profile(profile));
        all.extend(Workload::tls());
        all.extend(Workload::work());
        all.extend(Workload::chat());
        all.extend(Workload::attack());
        all
    }

    /// The workloads `--workloads` names: comma-separated labels as reports show them
    /// (`pingpong-c16`, `rate-10000`, `churn`, `idle-1000`, `bulk`, `pool-c128`).
    pub fn parse_list(list: &str) -> Result<Vec<Workload>, String> {
        list.split(',')
            .map(str::trim)
            .map(|label| {
                Workload::from_label(label).ok_or_else(|| {
                    format!(
                        "--workloads: unknown workload '{label}' (e.g. pingpong-c16, rate-10000, churn, idle-1000, bulk, pool-c128, udp-pingpong-c16-p8, udp-rate-10000, cpu-1ms-c16, wait-1ms-c1024, mixed-c16, chat-r16-c64, chat-slow, slowloris-64, flood-2000-defended)"
                    )
                })
            })
            .collect()
    }

    /// The workload's name, as in the workload table of `docs/compare.md`.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Pingpong { .. } => "pingpong",
            Workload::Rate { .. } => "rate",
            Workload::Churn => "churn",
            Workload::Idle { .. } => "idle",
            Workload::Bulk => "bulk",
            Workload::Pool { .. } => "pool",
            Workload::UdpPingpong { .. } => "udp-pingpong",
            Workload::UdpRate { .. } => "udp-rate",
            Workload::TlsPingpong => "tls-pingpong",
            Workload::TlsChurn { .. } => "tls-churn",
            Workload::TlsBulk => "tls-bulk",
            Workload::TlsMixed { .. } => "tls-mixed",
            Workload::Cpu { .. } => "cpu",
            Workload::Wait { .. } => "wait",
            Workload::Mixed => "mixed",
            Workload::Chat { .. } => "chat",
            Workload::ChatSlow => "chat-slow",
            Workload::Attack {
                attack: Hostile::Nobody,
                ..
            } => "attack-control",
            Workload::Attack {
                attack: Hostile::Slowloris,
                ..
            } => "slowloris",
            Workload::Attack {
                attack: Hostile::Flood,
                ..
            } => "flood",
            Workload::Slo { .. } => "slo",
        }
    }

    /// A short label with the parameter, e.g. `pingpong-c16`, `rate-20000`, `idle-1000`.
    pub fn label(&self) -> String {
        match self {
            Workload::Pingpong { connections } => format!("pingpong-c{connections}"),
            Workload::Rate { rate } => format!("rate-{rate:.0}"),
            Workload::Churn => "churn".to_owned(),
            Workload::Idle { idle } => format!("idle-{idle}"),
            Workload::Bulk => "bulk".to_owned(),
            Workload::Pool { connections } => format!("pool-c{connections}"),
            Workload::UdpPingpong {
                connections,
                pipeline: 1,
            } => format!("udp-pingpong-c{connections}"),
            Workload::UdpPingpong {
                connections,
                pipeline,
            } => format!("udp-pingpong-c{connections}-p{pipeline}"),
            Workload::UdpRate { rate } => format!("udp-rate-{rate:.0}"),
            Workload::TlsPingpong => "tls-pingpong".to_owned(),
            Workload::TlsChurn { resumed: false } => "tls-churn".to_owned(),
            Workload::TlsChurn { resumed: true } => "tls-churn-resumed".to_owned(),
            Workload::TlsBulk => "tls-bulk".to_owned(),
            Workload::TlsMixed { share } => format!("tls-mixed-{share}"),
            Workload::Cpu { connections } => format!("cpu-{}-c{connections}", cost()),
            Workload::Wait { connections } => format!("wait-{}-c{connections}", cost()),
            Workload::Mixed => format!("mixed-c{SIXTEEN}"),
            Workload::Chat { room, connections } => format!("chat-r{room}-c{connections}"),
            Workload::ChatSlow => "chat-slow".to_owned(),
            Workload::Slo { connections } => format!("slo-c{connections}"),
            Workload::Attack { attack, defended } => match defended {
                false => attack.stem(),
                true => format!("{}{DEFENDED}", attack.stem()),
            },
        }
    }

    /// The workload a [`Workload::label`] names (rates are whole messages per second).
    pub fn from_label(label: &str) -> Option<Workload> {
        if let Some(udp) = label.strip_prefix("udp-") {
            return Workload::udp_from_label(udp);
        }
        match label {
            "tls-pingpong" => return Some(Workload::TlsPingpong),
            "tls-churn" => return Some(Workload::TlsChurn { resumed: false }),
            "tls-churn-resumed" => return Some(Workload::TlsChurn { resumed: true }),
            "tls-bulk" => return Some(Workload::TlsBulk),
            _ => {}
        }
        if let Some(c) = label.strip_prefix(&format!("cpu-{}-c", cost())) {
            return Some(Workload::Cpu {
                connections: c.parse().ok().filter(|&c| c > 0)?,
            });
        }
        if let Some(c) = label.strip_prefix(&format!("wait-{}-c", cost())) {
            return Some(Workload::Wait {
                connections: c.parse().ok().filter(|&c| c > 0)?,
            });
        }
        if label == format!("mixed-c{SIXTEEN}") {
            return Some(Workload::Mixed);
        }
        if label == "chat-slow" {
            return Some(Workload::ChatSlow);
        }
        if let Some(c) = label.strip_prefix("slo-c") {
            return Some(Workload::Slo {
                connections: c.parse().ok().filter(|&c| c > 0)?,
            });
        }
        let (stem, defended) = match label.strip_suffix(DEFENDED) {
            Some(stem) => (stem, true),
            None => (label, false),
        };
        if let Some(attack) = Hostile::ALL.into_iter().find(|a| a.stem() == stem) {
            return Some(Workload::Attack { attack, defended });
        }
        if let Some(rest) = label.strip_prefix("chat-r") {
            let (room, connections) = rest.split_once("-c")?;
            let (room, connections): (usize, usize) =
                (room.parse().ok()?, connections.parse().ok()?);
            let whole_rooms = room > 0 && connections >= room && connections % room == 0;
            return whole_rooms.then_some(Workload::Chat { room, connections });
        }
        if let Some(share) = label.strip_prefix("tls-mixed-") {
            return Some(Workload::TlsMixed {
                share: share.parse().ok().filter(|s| *s < 100)?,
            });
        }
        let (name, parameter) = label.split_once('-').unwrap_or((label, ""));
        match (name, parameter) {
            ("pingpong", p) => Some(Workload::Pingpong {
                connections: p.strip_prefix('c')?.parse().ok()?,
            }),
            ("rate", p) => Some(Workload::Rate {
                rate: p.parse().ok()?,
            }),
            ("churn", "") => Some(Workload::Churn),
            ("idle", p) => Some(Workload::Idle {
                idle: p.parse().ok()?,
            }),
            ("bulk", "") => Some(Workload::Bulk),
            ("pool", p) => Some(Workload::Pool {
                connections: p.strip_prefix('c')?.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// The UDP workload a label names, less its `udp-`: `pingpong-c16`, `pingpong-c16-p8`,
    /// `rate-10000`.
    fn udp_from_label(label: &str) -> Option<Workload> {
        if let Some(rate) = label.strip_prefix("rate-") {
            return Some(Workload::UdpRate {
                rate: rate.parse().ok()?,
            });
        }
        let rest = label.strip_prefix("pingpong-c")?;
        let (connections, pipeline) = match rest.split_once("-p") {
            Some((c, p)) => (c, p.parse().ok().filter(|&p| p > 1)?),
            None => (rest, 1),
        };
        Some(Workload::UdpPingpong {
            connections: connections.parse().ok()?,
            pipeline,
        })
    }

    /// Which of the servers compared the workload runs.
    pub fn servers(&self) -> Servers {
        match self {
            Workload::Pingpong { .. }
            | Workload::Rate { .. }
            | Workload::Churn
            | Workload::Idle { .. }
            | Workload::Bulk
            | Workload::Slo { .. } => Servers::Tcp,
            Workload::Pool { .. } => Servers::PoolSweep,
            Workload::UdpPingpong { .. } | Workload::UdpRate { .. } => Servers::Udp,
            Workload::TlsPingpong
            | Workload::TlsChurn { .. }
            | Workload::TlsBulk
            | Workload::TlsMixed { .. } => Servers::Tls,
            Workload::Wait { .. } => Servers::Work,
            Workload::Cpu { .. } | Workload::Mixed => Servers::WorkOffload,
            Workload::Chat { .. } | Workload::ChatSlow => Servers::Chat,
            Workload::Attack { .. } => Servers::Attack,
        }
    }

    /// Whether the workload's requests have a cost (`--work`, and the servers speak it).
    pub fn is_work(&self) -> bool {
        matches!(self.servers(), Servers::Work | Servers::WorkOffload)
    }

    /// Whether the server runs on the loadgen CPUs too: the CPU-bound workloads, where a
    /// server that can use a second core should have one, and loadgen, sending a few thousand
    /// requests a second, needs little of it. The one exception to disjoint CPUs; recorded in
    /// each run and flagged in the report, with loadgen's CPU.
    pub fn shares_cpus(&self) -> bool {
        match self {
            Workload::Cpu { .. } | Workload::Mixed => true,
            Workload::Pingpong { .. }
            | Workload::Rate { .. }
            | Workload::Churn
            | Workload::Idle { .. }
            | Workload::Bulk
            | Workload::Pool { .. }
            | Workload::UdpPingpong { .. }
            | Workload::UdpRate { .. }
            | Workload::TlsPingpong
            | Workload::TlsChurn { .. }
            | Workload::TlsBulk
            | Workload::TlsMixed { .. }
            | Workload::Wait { .. }
            | Workload::Chat { .. }
            | Workload::ChatSlow
            | Workload::Attack { .. }
            | Workload::Slo { .. } => false,
        }
    }

    /// Whether the workload is the capacity search (`--slo`).
    pub fn is_slo(&self) -> bool {
        matches!(self, Workload::Slo { .. })
    }

    /// Whether the workload is the hostile clients' (`--attack`, against the built-in
    /// models).
    pub fn is_attack(&self) -> bool {
        self.servers() == Servers::Attack
    }

    /// The server arguments the workload adds: the defences, where it is defended.
    pub fn server_args(&self) -> &'static [&'static str] {
        match self {
            Workload::Attack { defended: true, .. } => &DEFENCES,
            _ => &[],
        }
    }

    /// Whether the workload is the chat room's (`--chat`, and the servers serve it).
    pub fn is_chat(&self) -> bool {
        self.servers() == Servers::Chat
    }

    /// Whether the workload is sent over TLS (and runs the TLS-capable models only).
    pub fn is_tls(&self) -> bool {
        self.servers() == Servers::Tls
    }

    /// Whether the workload is sent over UDP (and runs the UDP models only).
    pub fn is_udp(&self) -> bool {
        self.servers() == Servers::Udp
    }

    /// The connections the workload holds at once (idle ones included), and of those the idle
    /// ones.
    pub fn connections_needed(&self) -> (usize, usize) {
        match *self {
            Workload::Pingpong { connections }
            | Workload::Pool { connections }
            | Workload::Cpu { connections }
            | Workload::Wait { connections }
            | Workload::Chat { connections, .. }
            | Workload::Slo { connections }
            | Workload::UdpPingpong { connections, .. } => (connections, 0),
            Workload::ChatSlow => (CHAT_SLOW_MEMBERS, 0),
            // The attackers' connections beside the legitimate ones: a flood holds a tenth
            // of a second's worth at once.
            Workload::Attack { attack, .. } => match attack {
                Hostile::Nobody => (SIXTEEN, 0),
                Hostile::Slowloris => (SIXTEEN + SLOWLORIS_CONNECTIONS, 0),
                Hostile::Flood => (SIXTEEN + FLOOD_RATE as usize / 10, 0),
            },
            Workload::Rate { .. }
            | Workload::Churn
            | Workload::Bulk
            | Workload::UdpRate { .. }
            | Workload::TlsPingpong
            | Workload::TlsChurn { .. }
            | Workload::TlsBulk
            | Workload::TlsMixed { .. }
            | Workload::Mixed => (SIXTEEN, 0),
            Workload::Idle { idle } => (idle + 1, idle),
        }
    }

    /// The timing of the workload's runs, from the profile's: idle runs warm up until the
    /// server can have taken every idle connection (a forking server makes about a thousand
    /// processes a second on one core), so that memory is measured with all of them held.
    pub fn timing(&self, profile: Timing) -> Timing {
        match *self {
            // TLS runs have their own budget, whatever the TCP matrix's size, at least the
            // profile's; tls-mixed's long enough for its p99 (10,000 echoes a run).
            Workload::TlsMixed { .. } => at_least(profile, TLS_MIXED_TIMING),
            Workload::TlsPingpong | Workload::TlsChurn { .. } | Workload::TlsBulk => {
                at_least(profile, TLS_TIMING)
            }
            Workload::Idle { idle } => Timing {
                warmup: profile
                    .warmup
                    .max(Duration::from_secs_f64(idle as f64 / 1000.0)),
                duration: profile.duration,
            },
            // The work runs have their own budget too, at least the profile's; wait runs with
            // many clients warm up as idle runs do, for the same reason.
            Workload::Mixed => at_least(profile, MIXED_TIMING),
            Workload::Wait { connections } if connections >= WAIT_MANY => {
                let warmup = Duration::from_secs_f64(connections as f64 / 1000.0);
                at_least(
                    profile,
                    Timing {
                        warmup: WORK_TIMING.warmup.max(warmup),
                        duration: WORK_TIMING.duration,
                    },
                )
            }
            Workload::Cpu { .. } | Workload::Wait { .. } => at_least(profile, WORK_TIMING),
            Workload::Chat { .. } | Workload::ChatSlow => at_least(profile, CHAT_TIMING),
            Workload::Attack { .. } => at_least(profile, ATTACK_TIMING),
            // Each step's, whatever the profile's: a search is many steps.
            Workload::Slo { .. } => SLO_TIMING,
            Workload::Pingpong { .. }
            | Workload::Rate { .. }
            | Workload::Churn
            | Workload::Bulk
            | Workload::Pool { .. }
            | Workload::UdpPingpong { .. }
            | Workload::UdpRate { .. } => profile,
        }
    }

    /// The loadgen options that make the workload against `addr`, with `timing`.
    pub fn loadgen_options(&self, addr: SocketAddr, timing: Timing) -> loadgen::Options {
        let mut o = loadgen::Options::new(addr);
        o.duration = timing.duration;
        o.warmup = timing.warmup;
        o.progress = false;
        o.hlog_interval = INTERVAL;
        match *self {
            Workload::Pingpong { connections } | Workload::Pool { connections } => {
                o.connections = connections
            }
            Workload::Rate { rate } => {
                o.connections = SIXTEEN;
                o.rate = Some(rate);
            }
            Workload::Churn => {
                o.connections = SIXTEEN;
                o.churn = true;
            }
            Workload::Idle { idle } => {
                o.connections = 1;
                o.idle = idle;
            }
            Workload::Bulk => {
                o.connections = SIXTEEN;
                o.size = BULK_SIZE;
            }
            Workload::UdpPingpong {
                connections,
                pipeline,
            } => {
                o.udp = true;
                o.timeout = UDP_TIMEOUT;
                o.connections = connections;
                o.pipeline = pipeline;
            }
            Workload::UdpRate { rate } => {
                o.udp = true;
                o.timeout = UDP_TIMEOUT;
                o.connections = SIXTEEN;
                o.rate = Some(rate);
            }
            Workload::TlsPingpong => o.connections = SIXTEEN,
            Workload::TlsChurn { .. } => {
                o.connections = SIXTEEN;
                o.churn = true;
            }
            Workload::TlsBulk => {
                o.connections = SIXTEEN;
                o.size = BULK_SIZE;
            }
            Workload::TlsMixed { .. } => {
                o.connections = SIXTEEN;
                o.rate = Some(TLS_MIXED_RATE);
            }
            Workload::Cpu { connections } => {
                o.connections = connections;
                o.work = Some(work_spec(&format!("cpu={}", cost())));
            }
            Workload::Wait { connections } => {
                o.connections = connections;
                o.work = Some(work_spec(&format!("wait={}", cost())));
            }
            Workload::Mixed => {
                o.connections = SIXTEEN;
                o.rate = Some(MIXED_RATE);
                o.work = Some(work_spec(MIXED_SPEC));
            }
            Workload::Chat { room, connections } => {
                o.connections = connections;
                o.chat = Some(room);
                o.size = CHAT_SIZE;
                o.timeout = CHAT_TIMEOUT;
            }
            Workload::ChatSlow => {
                o.connections = CHAT_SLOW_MEMBERS;
                o.chat = Some(CHAT_ROOM);
                o.chat_slow = 1;
                o.size = CHAT_SLOW_SIZE;
                o.timeout = CHAT_TIMEOUT;
            }
            Workload::Slo { connections } => {
                o.connections = connections;
                o.find_rate =
                    Some(loadgen::Slo::parse(DEFAULT_SLO).expect("the default target parses"));
                o.rate_start = SLO_RATE_START;
                o.step = timing.duration;
            }
            Workload::Attack { attack, .. } => {
                o.connections = SIXTEEN;
                o.rate = Some(ATTACK_RATE);
                o.work = Some(work_spec("cpu=0"));
                o.attack = attack
                    .spec()
                    .map(|spec| AttackSpec::parse(&spec).expect("the workloads' attacks parse"));
            }
        }
        o
    }

    /// A TLS workload's options over [`Workload::loadgen_options`]: TLS trusting `cert`, and
    /// for `tls-mixed` at a share above 0, handshakes arriving at that share of `churn_rate`
    /// (the model's `tls-churn` handshakes per second in this comparison).
    pub fn tls_options(&self, o: &mut loadgen::Options, cert: &Path, churn_rate: Option<f64>) {
        o.tls = Some(loadgen::TlsOptions {
            trust: loadgen::Trust::Ca(cert.to_owned()),
            resume: *self == Workload::TlsChurn { resumed: true },
        });
        if let (Workload::TlsMixed { share }, Some(rate)) = (*self, churn_rate) {
            if share > 0 {
                o.handshake_rate = Some((rate * f64::from(share) / 100.0).round().max(1.0));
            }
        }
    }

    /// The report tables that show the workload, in [`Table::ALL`]'s order.
    pub fn tables(&self) -> &'static [Table] {
        match self {
            Workload::Pingpong { .. } => &[Table::PingpongThroughput, Table::PingpongLatency],
            Workload::Rate { .. } => &[Table::Rate],
            Workload::Churn => &[Table::Churn],
            Workload::Idle { .. } => &[Table::Idle],
            Workload::Bulk => &[Table::Bulk],
            Workload::Pool { .. } => &[Table::Pool],
            Workload::UdpPingpong { .. } => {
                &[Table::UdpThroughput, Table::UdpLatency, Table::UdpLoss]
            }
            Workload::UdpRate { .. } => &[Table::UdpRate, Table::UdpLoss],
            Workload::TlsPingpong | Workload::TlsBulk => &[Table::TlsThroughput],
            Workload::TlsChurn { .. } => &[Table::TlsThroughput, Table::TlsHandshakeCpu],
            Workload::TlsMixed { .. } => &[Table::TlsMixed],
            Workload::Cpu { .. } | Workload::Wait { .. } => {
                &[Table::WorkThroughput, Table::WorkLatency]
            }
            Workload::Mixed => &[Table::Mixed],
            Workload::Chat { .. } | Workload::ChatSlow => {
                &[Table::ChatDeliveries, Table::ChatLatency, Table::ChatCost]
            }
            Workload::Attack { .. } => &[Table::AttackRate, Table::AttackLatency],
            Workload::Slo { .. } => &[Table::Slo],
        }
    }

    /// The figure findings rank the workload's servers by.
    pub fn ranked_by(&self) -> Ranked {
        match self {
            Workload::Rate { .. }
            | Workload::Idle { .. }
            | Workload::UdpRate { .. }
            | Workload::TlsMixed { .. }
            | Workload::Mixed
            | Workload::Attack { .. } => Ranked::P99,
            Workload::Pingpong { .. }
            | Workload::Churn
            | Workload::Bulk
            | Workload::Pool { .. }
            | Workload::UdpPingpong { .. }
            | Workload::TlsPingpong
            | Workload::TlsChurn { .. }
            | Workload::TlsBulk
            | Workload::Cpu { .. }
            | Workload::Wait { .. }
            | Workload::Chat { .. }
            | Workload::ChatSlow
            | Workload::Slo { .. } => Ranked::Throughput,
        }
    }
}

/// [`WORK_COST`] as labels and `--work` write it: `1ms`.
fn cost() -> String {
    humantime::format_duration(WORK_COST).to_string()
}

/// A `--work` spec of this module's, which parses: a unit test parses every one.
fn work_spec(spec: &str) -> loadgen::work::WorkSpec {
    loadgen::work::WorkSpec::parse(spec).expect("the workloads' own --work specs parse")
}

/// `timing`, each of its parts at least `least`'s.
fn at_least(timing: Timing, least: Timing) -> Timing {
    Timing {
        warmup: timing.warmup.max(least.warmup),
        duration: timing.duration.max(least.duration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_their_workload_back() {
        for w in [
            Workload::Pingpong { connections: 1024 },
            Workload::Rate { rate: 50_000.0 },
            Workload::Churn,
            Workload::Idle { idle: 0 },
            Workload::Bulk,
            Workload::Pool { connections: 128 },
            Workload::Cpu { connections: 16 },
            Workload::Wait { connections: 1024 },
            Workload::Mixed,
            Workload::Chat {
                room: 128,
                connections: 128,
            },
            Workload::ChatSlow,
        ] {
            assert_eq!(Workload::from_label(&w.label()), Some(w));
        }
        let slo = Workload::Slo { connections: 16 };
        assert_eq!(slo.label(), "slo-c16");
        assert_eq!(
            Workload::from_label("slo-c1024"),
            Some(Workload::Slo { connections: 1024 })
        );
        let attack: Vec<String> = Workload::attack().iter().map(Workload::label).collect();
        assert_eq!(
            attack,
            [
                "attack-control",
                "slowloris-64",
                "slowloris-64-defended",
                "flood-2000",
                "flood-2000-defended"
            ]
        );
        let chat: Vec<String> = Workload::chat().iter().map(Workload::label).collect();
        assert_eq!(
            chat,
            [
                "chat-r16-c64",
                "chat-r128-c128",
                "chat-r16-c1024",
                "chat-slow"
            ]
        );
        assert_eq!(Workload::Pool { connections: 16 }.label(), "pool-c16");
        let work: Vec<String> = Workload::work().iter().map(Workload::label).collect();
        assert_eq!(
            work,
            ["cpu-1ms-c16", "wait-1ms-c16", "wait-1ms-c1024", "mixed-c16"]
        );
        for bad in [
            "pingpong",
            "pingpong-16",
            "rate-fast",
            "churn-2",
            "pool-16",
            "cpu-1ms-c0",
            "cpu-2ms-c16",
            "wait-1ms",
            "mixed-c17",
            "chat-r16-c40",
            "chat-r0-c0",
            "chat-r16",
            "chat-slow-2",
            "slowloris-32",
            "flood-2000-defended-defended",
            "attack-control-x",
            "slo-c0",
            "slo-16",
            "nope",
        ] {
            assert_eq!(Workload::from_label(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_workload_of_every_profile_names_itself_back_and_has_a_table() {
        for profile in [Profile::Quick, Profile::Full, Profile::Tiny] {
            for w in Workload::all_of_profile(profile) {
                assert_eq!(Workload::from_label(&w.label()), Some(w), "{}", w.label());
                assert!(!w.tables().is_empty(), "{}", w.label());
                let order: Vec<usize> = w
                    .tables()
                    .iter()
                    .map(|t| Table::ALL.iter().position(|a| a == t).unwrap())
                    .collect();
                assert!(order.windows(2).all(|p| p[0] < p[1]), "{}", w.label());
            }
        }
    }

    #[test]
    fn chat_workloads_make_valid_chat_runs_on_their_own_timing() {
        let addr = "127.0.0.1:7".parse().unwrap();
        let tiny = Timing {
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(300),
        };
        for w in Workload::chat() {
            let timing = w.timing(tiny);
            assert_eq!(timing, CHAT_TIMING, "{}", w.label());
            let o = w.loadgen_options(addr, timing);
            assert_eq!(o.validate(), Ok(()), "{}", w.label());
            let room = o.chat.expect("a chat workload sends --chat");
            assert_eq!(o.connections % room, 0, "{}", w.label());
            assert_eq!(w.connections_needed(), (o.connections, 0), "{}", w.label());
            assert!(
                w.is_chat() && !w.is_work() && !w.shares_cpus(),
                "{}",
                w.label()
            );
            assert_eq!(o.timeout, CHAT_TIMEOUT, "{}", w.label());
            let slow = w == Workload::ChatSlow;
            assert_eq!(o.chat_slow, usize::from(slow), "{}", w.label());
            assert_eq!(o.size, if slow { CHAT_SLOW_SIZE } else { CHAT_SIZE });
        }
        assert!(Workload::all_of_profile(Profile::Quick)
            .iter()
            .any(Workload::is_chat));
        assert!(!Workload::of_profile(Profile::Full)
            .iter()
            .any(Workload::is_chat));
    }

    #[test]
    fn work_workloads_send_their_costs_and_share_cpus_only_when_cpu_bound() {
        let addr = "127.0.0.1:7".parse().unwrap();
        let t = WORK_TIMING;
        for w in Workload::work() {
            let o = w.loadgen_options(addr, w.timing(t));
            let spec = o.work.expect("a work workload sends --work");
            assert!(w.is_work() && !w.is_tls() && !w.is_udp(), "{}", w.label());
            let cpu_bound = !matches!(w, Workload::Wait { .. });
            assert_eq!(w.shares_cpus(), cpu_bound, "{}", w.label());
            let classes = spec.classes.len();
            assert_eq!(classes, if w == Workload::Mixed { 2 } else { 1 });
        }
        let mixed = Workload::Mixed.timing(Timing {
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(300),
        });
        assert!(mixed.duration >= Duration::from_secs(3));
        let many = Workload::Wait { connections: 1024 }.timing(WORK_TIMING);
        assert!(many.warmup >= Duration::from_millis(1024));
        assert!(Workload::all_of_profile(Profile::Quick)
            .iter()
            .filter(|w| !w.is_work())
            .all(|w| !w.shares_cpus()));
    }

    #[test]
    fn attack_workloads_send_an_open_loop_beside_their_attack_and_defend_only_when_asked() {
        let addr = "127.0.0.1:7".parse().unwrap();
        for w in Workload::attack() {
            let timing = w.timing(Timing {
                warmup: Duration::from_millis(100),
                duration: Duration::from_millis(300),
            });
            assert_eq!(timing, ATTACK_TIMING, "{}", w.label());
            let o = w.loadgen_options(addr, timing);
            assert_eq!(o.validate(), Ok(()), "{}", w.label());
            assert_eq!((o.connections, o.rate), (SIXTEEN, Some(ATTACK_RATE)));
            assert!(o.work.is_some() && w.is_attack() && !w.is_work() && !w.shares_cpus());
            let Workload::Attack { attack, defended } = w else {
                unreachable!()
            };
            assert_eq!(
                o.attack.is_some(),
                attack != Hostile::Nobody,
                "{}",
                w.label()
            );
            assert_eq!(!w.server_args().is_empty(), defended, "{}", w.label());
        }
        assert!(Workload::all_of_profile(Profile::Full)
            .iter()
            .any(Workload::is_attack));
        assert!(Workload::Bulk.server_args().is_empty());
    }

    #[test]
    fn the_capacity_search_steps_on_its_own_timing_whatever_the_profile() {
        let addr = "127.0.0.1:7".parse().unwrap();
        for profile in [Profile::Quick, Profile::Full] {
            let ten = Timing {
                warmup: Duration::from_secs(2),
                duration: Duration::from_secs(10),
            };
            for w in Workload::slo(profile) {
                assert_eq!(w.timing(ten), SLO_TIMING, "{}", w.label());
                let o = w.loadgen_options(addr, w.timing(ten));
                assert_eq!(o.validate(), Ok(()), "{}", w.label());
                assert_eq!(
                    (o.step, o.rate_start),
                    (SLO_TIMING.duration, SLO_RATE_START)
                );
                assert_eq!(o.find_rate.map(|s| s.text()).as_deref(), Some(DEFAULT_SLO));
                assert!(w.is_slo() && w.servers() == Servers::Tcp);
            }
        }
        assert_eq!(Workload::slo(Profile::Full).len(), 2);
        assert_eq!(Workload::slo(Profile::Quick).len(), 1);
    }
}
