//! One RFC 862 echo protocol, over TCP and UDP, served by many concurrency models.
//!
//! Every model lives in its own module under [`models`] and reads on its own; [`models`] also
//! holds the registry ([`Model`]) that names each model, its family, transport and TLS support,
//! and maps it to its entry point. The small blocks the models share each have a module named
//! for what they do:
//!
//! - [`config`]: what a model is told at start-up ([`ServerConfig`]);
//! - [`listen`]: binding the listener and the one `listening on` line;
//! - [`signals`]: the stop signals as a pollable pipe ([`SignalPipe`]);
//! - [`accept`]: the poll-driven accept loop of the blocking-style models and accept errors;
//! - [`datagram`]: the UDP socket, receiving and replying, the rules and counters of the
//!   `udp-` models;
//! - [`echo`]: the blocking echo loop and the per-connection buffer bounds;
//! - [`work`]: echo with a cost (`--work`): the request header, the calibrated CPU work, and
//!   the request loops of the blocking models and the runtimes;
//! - [`tls`]: TLS for the TCP models (rustls): the shared configuration, a TLS stream for the
//!   blocking models and the mio loop, the handshake deadline, `--gen-cert`;
//! - [`chat`]: the chat room (`--chat`): its frames, the members' bounded queues, and the
//!   rooms shared each family's way (locks, an owning loop, a hub process, tasks);
//! - [`conn_limit`]: the `--max-conns` cap shared by threads and tasks;
//! - [`defence`]: the defences against hostile clients (`--idle-timeout`, the cap per address,
//!   the IP blocker) and the parent as their broker for `prefork`'s workers;
//! - [`errors`]: naming I/O errors;
//! - [`endings`]: counting connections that ended uncleanly, for one line at exit.
//!
//! [`cli`] is the `echo-server` command line on top of them; [`python`] is the registry of the
//! tutorials' own Python servers, whose scripts ship inside the binaries. Imports flow one way:
//! `cli` → `models` → the shared blocks; no block imports a model, no model imports the registry.

pub mod accept;
pub mod chat;
pub mod cli;
pub mod config;
pub mod conn_limit;
pub mod datagram;
pub mod defence;
pub mod echo;
pub mod endings;
pub mod errors;
pub mod listen;
pub mod models;
pub mod python;
pub mod signals;
pub mod tls;
pub mod work;

pub use config::ServerConfig;
pub use models::{Bound, Family, Model, Transport};
pub use signals::SignalPipe;

#[cfg(test)]
mod tests {
    /// The shared blocks, then the models and their registry, then the command line.
    const LAYERS: [&[&str]; 3] = [
        &[
            "errors",
            "endings",
            "signals",
            "config",
            "listen",
            "datagram",
            "conn_limit",
            "defence",
            "echo",
            "work",
            "tls",
            "accept",
            "chat",
        ],
        &["models"],
        &["cli", "python"],
    ];

    #[test]
    fn modules_import_one_way() {
        testkit::modgraph::assert_one_way(env!("CARGO_MANIFEST_DIR"), &LAYERS);
    }
}
