//! A server echobench does not build: a user's own, started from a command line
//! (`compare --server NAME=COMMAND`, or an entry of `--server-file`). `environment.json` keeps
//! each one's definition, so that a report says what ran and `--append` can check it is the
//! same.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An external server as a comparison runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalServer {
    /// The name reports show (a server label of its own: no built-in model has it).
    pub name: String,
    /// The command line, with `{port}` or `{addr}` where the runner puts the port or the
    /// address (`127.0.0.1:PORT`) it picked. Split into words as a shell would (quotes and
    /// backslashes; no expansion), leading `NAME=value` words set the environment, and the
    /// program is run directly: no shell sits in the measured tree.
    pub command: String,
    /// What it serves echo over: `tcp`.
    pub transport: String,
    /// Its concurrency model's family, in the registry's words where it is one of them
    /// (e.g. `event loops`), or the user's.
    pub family: Option<String>,
    /// Anything a reader of the report should know (language, version, settings).
    pub notes: Option<String>,
    /// The command line that serves echo over TLS, with `{cert}` and `{key}` besides `{port}`
    /// or `{addr}`: kept for the TLS workloads, which are yet to come.
    pub tls_command: Option<String>,
    /// The most idle connections it is asked to hold; workloads that need more are not run.
    pub max_idle: Option<usize>,
    /// The most connections at once it is asked to take; workloads that need more are not run.
    pub max_connections: Option<usize>,
    /// How long it may take to be ready (its `listening on` line, or an echo of a probe).
    pub ready_timeout: Duration,
    /// How long it may take to end after SIGTERM before its process group is killed.
    pub stop_grace: Duration,
    /// What one client costs it in memory, bytes, where that is megabytes (a process per
    /// client): workloads whose clients would need over half the machine's memory are not
    /// run. Set for echobench's own Python models; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_client: Option<u64>,
    /// Whether the command serves requests with a cost (`--work`, added for a run of those
    /// by echobench to its Python models' commands): its readiness probe is then a request
    /// that costs nothing. Not a setting of server files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub work: bool,
    /// Whether the command serves the chat room (`--chat`, added likewise for a run of the
    /// chat workloads): its readiness probe is then a join, answered by the server's `A`. Not
    /// a setting of server files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chat: bool,
}

/// The transports an external server of the user's may serve (echobench's own `py-udp` serves
/// `udp`).
pub const TRANSPORTS: [&str; 1] = ["tcp"];
