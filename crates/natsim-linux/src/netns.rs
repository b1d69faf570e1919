//! Network namespaces, veth pairs and bridges for one verify run, and their
//! removal on every exit path.
//!
//! Every name carries a per-run prefix (`nsv<pid>x<n>`), so parallel runs
//! (and parallel tests in one process) never meet. The host's own network
//! namespace is never changed: every `ip` call names a namespace with `-n`
//! or runs under `ip netns exec`. [`Lab`] deletes its namespaces on drop;
//! a Ctrl-C handler deletes those of every live lab before exiting.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// Why the lab could not be built or a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError {
    pub command: String,
    pub stderr: String,
}

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` failed: {}", self.command, self.stderr.trim())
    }
}

impl std::error::Error for CmdError {}

/// Namespaces of all live labs, for the signal handler.
fn live() -> &'static Mutex<BTreeSet<String>> {
    static LIVE: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(BTreeSet::new()))
}

fn install_signal_handler() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Another handler may already be installed by the embedding
        // program; then it is responsible for exiting, and Drop still runs
        // on normal paths.
        let _ = ctrlc::set_handler(|| {
            let names: Vec<String> = live()
                .lock()
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for n in names {
                let _ = Command::new("ip")
                    .args(["netns", "delete", &n])
                    .stderr(Stdio::null())
                    .status();
            }
            eprintln!("natsim verify: interrupted; namespaces removed");
            std::process::exit(130);
        });
    });
}

/// Runs a command, returning its stdout.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, CmdError> {
    run_input(cmd, args, None)
}

/// Runs a command with `input` on its stdin.
pub fn run_input(cmd: &str, args: &[&str], input: Option<&str>) -> Result<String, CmdError> {
    use std::io::Write;
    let text = || format!("{cmd} {}", args.join(" "));
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CmdError {
            command: text(),
            stderr: e.to_string(),
        })?;
    if let (Some(i), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(i.as_bytes()).map_err(|e| CmdError {
            command: text(),
            stderr: e.to_string(),
        })?;
    }
    let out = child.wait_with_output().map_err(|e| CmdError {
        command: text(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(CmdError {
            command: text(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A set of namespaces created for one run; removed on drop.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
}

impl Lab {
    pub fn new() -> Lab {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        install_signal_handler();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Lab {
            prefix: format!("nsv{}x{n}", std::process::id()),
            namespaces: Vec::new(),
        }
    }

    /// Creates namespace `<prefix>-<role>` with loopback up, IPv6 off (no
    /// router solicitations or MLD reports to filter out) and returns its
    /// name.
    pub fn namespace(&mut self, role: &str) -> Result<String, CmdError> {
        let name = format!("{}-{role}", self.prefix);
        live().lock().map(|mut s| s.insert(name.clone())).ok();
        run("ip", &["netns", "add", &name])?;
        self.namespaces.push(name.clone());
        run("ip", &["-n", &name, "link", "set", "lo", "up"])?;
        self.sysctl(&name, "net.ipv6.conf.all.disable_ipv6", "1")?;
        self.sysctl(&name, "net.ipv6.conf.default.disable_ipv6", "1")?;
        Ok(name)
    }

    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<(), CmdError> {
        run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-q",
                "-w",
                &format!("{key}={value}"),
            ],
        )
        .map(|_| ())
    }

    /// `ip -n ns ARGS...`
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String, CmdError> {
        let mut a = vec!["-n", ns];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// `ip netns exec ns CMD ARGS...`, optionally with stdin.
    pub fn exec(
        &self,
        ns: &str,
        cmd: &str,
        args: &[&str],
        input: Option<&str>,
    ) -> Result<String, CmdError> {
        let mut a = vec!["netns", "exec", ns, cmd];
        a.extend_from_slice(args);
        run_input("ip", &a, input)
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip")
                .args(["netns", "delete", &n])
                .stderr(Stdio::null())
                .status();
            live().lock().map(|mut s| s.remove(&n)).ok();
        }
    }
}

/// What verify needs from the machine, and what is missing.
pub fn missing_requirements() -> Vec<String> {
    let mut missing = Vec::new();
    if !rustix::process::geteuid().is_root() {
        missing.push("root (network namespaces need CAP_NET_ADMIN)".to_string());
    }
    for (tool, pkg) in [
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("conntrack", "conntrack"),
    ] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            missing.push(format!("`{tool}` (apt-get install {pkg})"));
        }
    }
    missing
}
