//! # natsim-linux: the kernel as natsim's oracle
//!
//! `verify` builds a router's topology in Linux network namespaces, loads
//! its NAT as nftables rules generated from the engine's configuration,
//! runs a probe set through the kernel and through the engine, and
//! compares what came out.
//!
//! - [`topology`]: the router under test and the probe hosts around it.
//! - [`nft`]: the engine's rules as an nftables JSON ruleset.
//! - [`netns`]: namespaces and their cleanup (drop and Ctrl-C).
//! - [`packet`]: probe packets and their summaries.
//! - [`world`]: the probe interface and natsim's side ([`world::EngineWorld`]).
//! - [`kernel`]: the kernel's side ([`kernel::KernelWorld`]).
//! - [`probe`]: the probe set and the comparison rule of each step.
//! - [`compare`]: the comparison and the printed table.
//!
//! Only this crate touches the OS; the engine stays sans-IO.
#![deny(unsafe_code)]

pub mod compare;
pub mod drive;
pub mod kernel;
pub mod netns;
pub mod nft;
pub mod packet;
pub mod probe;
pub mod sysctl;
pub mod topology;
pub mod world;

pub use compare::{render, ProbeResult};
pub use topology::{IfaceSpec, RouterSpec, Topology};

/// Why verify could not run (exit 2), as opposed to a disagreement.
#[derive(Debug)]
pub enum VerifyError {
    /// Root or tools missing: what is missing.
    Missing(Vec<String>),
    Topology(topology::TopologyError),
    Config(natsim_nat::ConfigError),
    Kernel(kernel::KernelError),
    /// Verify models the `linux` profile's switches with the kernel's own
    /// behaviour; other profiles have no kernel equivalent.
    NotLinuxProfile(String),
    /// A timeout the kernel's conntrack sysctls cannot express.
    NoKernelSetting(String),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(m) => write!(f, "verify --linux needs {}", m.join(", ")),
            Self::Topology(e) => e.fmt(f),
            Self::Config(e) => write!(f, "the engine refuses the configuration: {e}"),
            Self::Kernel(e) => write!(f, "building the kernel topology: {e}"),
            Self::NotLinuxProfile(p) => write!(
                f,
                "profile `{p}` has no kernel equivalent; verify --linux checks routers with the `linux` profile"
            ),
            Self::NoKernelSetting(why) => write!(f, "the kernel cannot be set up alike: {why}"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// The outcome of one verify run.
pub struct Report {
    pub router: String,
    pub results: Vec<ProbeResult>,
    /// The nftables JSON that was loaded.
    pub ruleset: String,
}

impl Report {
    pub fn agreed(&self) -> usize {
        self.results.iter().filter(|r| r.agree).count()
    }
    pub fn all_agree(&self) -> bool {
        self.agreed() == self.results.len()
    }
}

/// Runs the probe set through natsim's engine only (no kernel): what
/// BENCHMARKS.md compares a verify run against.
pub fn engine_only(topo: &Topology) -> Result<Vec<Vec<probe::StepRecord>>, VerifyError> {
    let mut w = world::EngineWorld::new(topo).map_err(VerifyError::Config)?;
    Ok(probe::probes(topo)
        .iter()
        .map(|p| drive::run(p, topo, &mut w))
        .collect())
}

/// Checks `router` against the kernel.
pub fn verify(router: RouterSpec) -> Result<Report, VerifyError> {
    if router.nat.behaviour.name != "linux" {
        return Err(VerifyError::NotLinuxProfile(
            router.nat.behaviour.name.to_string(),
        ));
    }
    sysctl::conntrack_timeouts(&router.nat.behaviour.timeouts)
        .map_err(VerifyError::NoKernelSetting)?;
    let missing = netns::missing_requirements();
    if !missing.is_empty() {
        return Err(VerifyError::Missing(missing));
    }
    let topo = Topology::new(router).map_err(VerifyError::Topology)?;
    let mut engine = world::EngineWorld::new(&topo).map_err(VerifyError::Config)?;
    let mut kernel = kernel::KernelWorld::new(&topo).map_err(VerifyError::Kernel)?;
    let mut results = Vec::new();
    for p in probe::probes(&topo) {
        use world::World;
        let k = drive::run(&p, &topo, &mut kernel);
        let conntrack = kernel.explain();
        let n = drive::run(&p, &topo, &mut engine);
        let mut r = compare::compare(&p.name, &topo, &k, &n);
        if !r.agree {
            r.natsim_trace = engine.explain();
            r.conntrack = conntrack;
        }
        results.push(r);
    }
    Ok(Report {
        router: topo.router.name.clone(),
        results,
        ruleset: kernel.ruleset.clone(),
    })
}
