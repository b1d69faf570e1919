//! natsim: a packet-level NAT router simulator.
//!
//! This facade re-exports the workspace crates so that users and the
//! integration tests in `tests/` depend on one name:
//! * [`nat`]: the sans-IO NAT engine;
//! * [`sim`]: the deterministic network simulator;
//! * [`apps`]: protocol models (DNS, SMTP/IMS, DCE/RPC + Outlook, HTTP, FTP);
//! * [`scenario`]: the TOML scenario format, runner and reports.
#![deny(unsafe_code)]

pub use natsim_apps as apps;
pub use natsim_nat as nat;
pub use natsim_scenario as scenario;
pub use natsim_sim as sim;
