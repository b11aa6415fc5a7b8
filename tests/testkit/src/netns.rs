//! A throwaway network namespace for tests of real packet loss and a real rate limit: its own
//! loopback (with a 1,500-byte MTU), an nftables rule that drops a share of TCP packets at random (`numgen random`),
//! and a `tbf` qdisc that caps the rate. This kernel has no `sch_netem`, so loss comes from
//! nftables and the limit from tbf.
//!
//! Needs root, `ip` (iproute2), `tc` and `nft` (nftables). Where any is missing,
//! [`Netns::create`] says which in one line and the test skips, unless
//! `ECHOBENCH_REQUIRE=netns` is set: then a skip is a failure.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace, deleted when dropped.
pub struct Netns {
    /// Its name, for `ip netns exec`.
    pub name: String,
}

fn run(args: &[&str]) -> Result<Output, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// A new namespace with its loopback up, or why there cannot be one (after printing the
    /// one-line skip). Panics instead when `ECHOBENCH_REQUIRE=netns`.
    pub fn create(test: &str) -> Option<Netns> {
        match Netns::try_create() {
            Ok(ns) => Some(ns),
            Err(why) => {
                crate::skip(test, "netns", &why);
                None
            }
        }
    }

    fn try_create() -> Result<Netns, String> {
        for tool in ["ip", "tc", "nft"] {
            let found = Command::new(tool)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            if !found {
                return Err(format!("no `{tool}` (install iproute2 and nftables)"));
            }
        }
        let name = format!(
            "echobench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        run(&["ip", "netns", "add", &name])
            .map_err(|e| format!("cannot create a network namespace (root needed): {e}"))?;
        let ns = Netns { name };
        // An Ethernet-sized MTU: segments as a real network cuts them (loopback's is 64 KiB).
        ns.exec_ok(&["ip", "link", "set", "lo", "mtu", "1500", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace and returns its output.
    pub fn exec(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    fn exec_ok(&self, args: &[&str]) -> Result<Output, String> {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Drops `percent` % of TCP packets leaving any socket in the namespace, at random.
    pub fn drop_tcp(&self, percent: u32) -> Result<(), String> {
        let rules = format!(
            "table inet echobench_loss {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n    meta l4proto tcp numgen random mod 100 < {percent} drop\n  }}\n}}\n"
        );
        let mut child = self
            .exec(&["nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("nft: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(rules.as_bytes())
                .map_err(|e| format!("nft: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "nft refused the drop rule: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    /// Caps the namespace's loopback at `rate` (tc syntax, e.g. `20mbit`) with a token bucket.
    pub fn limit_rate(&self, rate: &str) -> Result<(), String> {
        self.exec_ok(&[
            "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", rate, "burst", "16kb",
            "latency", "100ms",
        ])
        .map(|_| ())
    }

    /// The namespace's TCP counter `name` (e.g. `TcpRetransSegs`), read from its
    /// `/proc/net/snmp`, if it can be read. (Not `nstat`: it keeps a history file in `/tmp`
    /// that every namespace and every concurrent test shares, and a race on it once read 0.)
    pub fn tcp_counter(&self, name: &str) -> Option<u64> {
        let field = name.strip_prefix("Tcp")?;
        let out = self.exec_ok(&["cat", "/proc/net/snmp"]).ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (tcp.next()?, tcp.next()?);
        let at = names.split_whitespace().position(|n| n == field)?;
        values.split_whitespace().nth(at)?.parse().ok()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}
