//! Where a comparison runs beyond this host: load agents (`--agents`), a server on another
//! host (`--server-host`, `--server-addr`), and how a command is started there (`--launcher`,
//! `--agent-bin`). A host named `local` (or `localhost`, `127.0.0.1`, `::1`), or any host with
//! an empty launcher, is run by direct exec, through the same code as a remote one.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Host names run by direct exec, never through the launcher.
pub const LOCAL: [&str; 4] = ["local", "localhost", "127.0.0.1", "::1"];

/// The launcher unless `--launcher` is given.
pub const DEFAULT_LAUNCHER: &str = "ssh {host} --";

/// Where the load and the server run, and how they are started there.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    /// The load agents' hosts, in order (a host named twice runs two agents); empty: loadgen
    /// runs inside echobench, as without `--agents`.
    pub agents: Vec<String>,
    /// The launcher's words, `{host}` among them (empty: every host by direct exec).
    pub launcher: Vec<String>,
    /// The echobench binary on the hosts (`echobench loadgen ...` is loadgen, `echobench
    /// serve` the server).
    pub bin: String,
    /// `--loadgen-cpus` as given: every agent is pinned to them; without them only local
    /// agents are, to the loadgen CPUs.
    pub agent_cpus: Option<Vec<usize>>,
    /// `--server-host`: the host the servers run on; `None`: this one.
    pub server_host: Option<String>,
    /// `--server-addr`: where the servers listen and the load is sent (port 0: one the kernel
    /// picks); `None`: a free port on loopback.
    pub server_addr: Option<String>,
    /// `--server-cpus` as given: a remote server is pinned only to these.
    pub server_cpus: Option<Vec<usize>>,
}

/// Why `host` (of `--agents` or `--server-host`) is not a host: it must be a host name
/// (letters, digits, `-` and `_` in dot-separated labels, none starting with `-`), an IP
/// address, or `user@` one of those. Anything else could be taken for an option or a shell
/// word by the launcher (`-oProxyCommand=...` is an ssh option).
pub fn not_a_host(host: &str) -> Option<String> {
    let (user, name) = match host.split_once('@') {
        Some((user, name)) => (Some(user), name),
        None => (None, host),
    };
    let word = |w: &str, extra: &[char]| {
        !w.is_empty()
            && !w.starts_with('-')
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
    };
    let user_ok = user.is_none_or(|u| u.len() <= 64 && word(u, &['.']));
    let name_ok = name.parse::<std::net::IpAddr>().is_ok()
        || (name.len() <= 253 && name.split('.').all(|l| l.len() <= 63 && word(l, &[])));
    (!(user_ok && name_ok))
        .then(|| format!("'{host}' is not a host name, an IP address or user@host"))
}

impl Hosts {
    /// Whether the load runs on agents.
    pub fn has_agents(&self) -> bool {
        !self.agents.is_empty()
    }

    /// The launcher as one line, its words quoted where they hold blanks.
    pub fn launcher_text(&self) -> String {
        self.launcher
            .iter()
            .map(|w| match w.contains(char::is_whitespace) {
                true => shlex::try_quote(w).map_or_else(|_| w.clone(), |q| q.into_owned()),
                false => w.clone(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether `host` runs by direct exec.
    pub fn is_local(&self, host: &str) -> bool {
        self.launcher.is_empty() || LOCAL.contains(&host)
    }

    /// Why these hosts cannot work together, for the usage error: a server on another host's
    /// loopback cannot be reached from here, nor one on this host's loopback from agents
    /// elsewhere.
    pub fn refusal(&self) -> Option<String> {
        let loopback = match &self.server_addr {
            None => true,
            Some(addr) => addr
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback()),
        };
        if !loopback {
            return None;
        }
        if let Some(host) = self.server_host.as_ref().filter(|h| !self.is_local(h)) {
            return Some(format!(
                "--server-host {host}: a server on its loopback cannot be reached from elsewhere; give --server-addr ADDR, an address the load can reach"
            ));
        }
        let remote = self.agents.iter().find(|h| !self.is_local(h))?;
        Some(format!(
            "--agents: agent {remote} cannot reach a server on loopback; give --server-addr ADDR, an address it can reach"
        ))
    }

    /// The command line that runs `echobench ARGS` on `host`: the launcher's words with
    /// `{host}` filled in, then the binary and its arguments (quoted for the remote shell when
    /// the launcher is ssh, which joins them into one command line).
    pub fn argv(&self, host: &str, args: &[String]) -> Vec<String> {
        let mut remote = vec![self.bin.clone()];
        remote.extend(args.iter().cloned());
        if self.is_local(host) {
            return remote;
        }
        let ssh = Path::new(&self.launcher[0])
            .file_name()
            .is_some_and(|n| n == "ssh");
        if ssh {
            remote = remote
                .iter()
                .map(|a| shlex::try_quote(a).map_or_else(|_| a.clone(), |q| q.into_owned()))
                .collect();
        }
        let mut argv: Vec<String> = self
            .launcher
            .iter()
            .map(|w| w.replace("{host}", host))
            .collect();
        argv.extend(remote);
        argv
    }

    /// Starts `echobench ARGS` on `host` with stdin, stdout and stderr piped; the error says
    /// what could not be run.
    pub fn spawn(&self, host: &str, args: &[String]) -> Result<Child, String> {
        let argv = self.argv(host, args);
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run '{}': {e}", argv[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_launcher_is_used_for_remote_hosts_only_and_quoted_for_ssh() {
        let mut hosts = Hosts {
            launcher: words(&["ssh", "{host}", "--"]),
            bin: "/opt/echo bench".to_owned(),
            ..Hosts::default()
        };
        let args = words(&["loadgen", "agent-hello"]);
        assert_eq!(
            hosts.argv("b", &args),
            [
                "ssh",
                "b",
                "--",
                "'/opt/echo bench'",
                "loadgen",
                "agent-hello"
            ]
        );
        assert_eq!(hosts.argv("local", &args)[0], "/opt/echo bench");
        hosts.launcher = words(&["ip", "netns", "exec", "{host}"]);
        assert_eq!(
            hosts.argv("lab-a1", &args),
            [
                "ip",
                "netns",
                "exec",
                "lab-a1",
                "/opt/echo bench",
                "loadgen",
                "agent-hello"
            ]
        );
    }

    #[test]
    fn only_host_names_addresses_and_user_at_host_are_hosts() {
        for host in [
            "b1",
            "lab-a1",
            "node_7.example.org",
            "10.0.0.2",
            "::1",
            "fe80::1",
            "bench@b1",
            "first.last@10.0.0.2",
            "local",
        ] {
            assert_eq!(not_a_host(host), None, "{host}");
        }
        for host in [
            "-oProxyCommand=touch /tmp/x",
            "-v",
            "b1 -v",
            "b1;reboot",
            "$(reboot)",
            "a..b",
            "",
            "@b1",
            "-u@b1",
            "u@-b1",
            "b1\nb2",
            "ünï",
        ] {
            let why = not_a_host(host).expect(host);
            assert!(why.contains(host), "{why}");
        }
    }

    #[test]
    fn agents_elsewhere_need_a_server_address_they_can_reach() {
        let mut hosts = Hosts {
            agents: words(&["b"]),
            launcher: words(&["ssh", "{host}", "--"]),
            ..Hosts::default()
        };
        assert!(hosts.refusal().is_some_and(|r| r.contains("--server-addr")));
        hosts.server_addr = Some("10.0.0.1:0".to_owned());
        assert_eq!(hosts.refusal(), None);
        hosts.agents = words(&["local", "local"]);
        hosts.server_addr = None;
        assert_eq!(hosts.refusal(), None);
        hosts.server_host = Some("s".to_owned());
        hosts.server_addr = Some("127.0.0.1:0".to_owned());
        assert!(hosts
            .refusal()
            .is_some_and(|r| r.starts_with("--server-host s:")));
    }
}
