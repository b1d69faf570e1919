//! natsim: a packet-level NAT router simulator.
//!
//! This facade re-exports the workspace crates so that users and the
//! integration tests in `tests/` depend on one name.
#![deny(unsafe_code)]

pub use natsim_nat as nat;
