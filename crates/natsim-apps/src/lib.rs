//! natsim-apps: protocol models on smoltcp sockets.
//!
//! Each protocol is a wire codec (pure, tested on byte fixtures) plus
//! sans-IO state machines implementing [`natsim_sim::App`]:
//! * [`dns`]: authoritative server with A/MX zones, stub resolver, `nslookup`;
//! * [`smtp`]: server sessions and recipient policies;
//! * [`mail`]: the sending MTA (RFC 5321 §5: MX, implicit A, literals,
//!   retry queue, delivery reports) and the Exchange 5.5 IMS model with the
//!   KBs' knobs (address spaces, smart host, reroute, site addressing,
//!   `OverrideProxyOut`/`SiteDomain`, service pack), NDRs laid out as
//!   Exchange writes them;
//! * [`dcerpc`]: connection-oriented DCE/RPC PDUs and EPM towers;
//! * [`exchange`]: endpoint mapper, Exchange RPC services, Outlook;
//! * [`http`]: OWA-style server and a GET client;
//! * [`ftp`]: server and client, active and passive.
//!
//! Apps expose typed commands and outcomes (`Mta::submit`, `Mta::status`,
//! `Outlook::outcome`, ...) that the scenario runner reads through
//! `Sim::app` / `Sim::with_app`. They never read the wall clock.
#![deny(unsafe_code)]

pub mod dcerpc;
pub mod dns;
pub mod exchange;
pub mod ftp;
pub mod http;
pub mod mail;
pub mod net;
pub mod resolver;
pub mod smtp;
