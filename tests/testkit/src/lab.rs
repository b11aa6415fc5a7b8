//! The hosts lab of `scripts/netns-lab.sh` for tests of `compare --agents`: a server namespace
//! and N agent namespaces on a bridge, made under a name of the test's own and removed when
//! dropped. Where it cannot be made (no root, no `ip`), [`Lab::up`] says why in one line and
//! the test skips, unless `ECHOBENCH_REQUIRE=netns`: then the skip is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The lab's /24 (the same in every lab: each lab's namespaces are a network of their own).
pub const NET: &str = "10.77.0";

/// A lab, taken down when dropped.
pub struct Lab {
    /// Its name: the namespaces are `NAME-server`, `NAME-agent1`, ...
    pub name: String,
    state: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/netns-lab.sh")
}

impl Lab {
    /// A lab of `agents` agent namespaces, or `None` after the one-line skip.
    pub fn up(test: &str, agents: usize) -> Option<Lab> {
        let lab = Lab {
            name: format!(
                "eb{}x{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ),
            state: std::env::temp_dir().join(format!("echobench-lab-{}", std::process::id())),
        };
        match lab.script(&["up", &agents.to_string()]) {
            Ok(_) => Some(lab),
            Err(why) => {
                crate::skip(test, "netns", &why);
                None
            }
        }
    }

    fn script(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("bash")
            .arg(script())
            .args(args)
            .env("LAB", &self.name)
            .env("LAB_STATE_DIR", &self.state)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run netns-lab.sh: {e}"))?;
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        }
    }

    /// The server's namespace.
    pub fn server(&self) -> String {
        format!("{}-server", self.name)
    }

    /// Agent `i`'s namespace (from 1).
    pub fn agent(&self, i: usize) -> String {
        format!("{}-agent{i}", self.name)
    }

    /// What the script recorded of the lab (`mtu=1500`, ...).
    pub fn status(&self) -> String {
        self.script(&["status"]).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.script(&["down"]);
    }
}
