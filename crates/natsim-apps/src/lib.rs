//! natsim-apps: protocol models on smoltcp sockets.
//!
//! Each protocol is a wire codec (pure, tested on byte fixtures) plus
//! sans-IO state machines implementing [`natsim_sim::App`]:
//! * [`dns`]: authoritative server with A/MX zones, stub resolver, `nslookup`;
//! * [`smtp`]: server sessions and recipient policies;
//! * [`resolver`]: stub resolvers per client (Windows, nslookup, BSD);
//! * [`mail`]: the sending MTA (RFC 5321 §5: MX, implicit A, literals,
//!   retry schedule and expiry, Message-ID and Received fields);
//! * [`ims_config`] and [`ims`]: the Exchange 5.5 IMS with the KBs' knobs
//!   (address spaces, smart host, reroute and its routing list, site
//!   addressing and proxies, `OverrideProxyOut`/`SiteDomain`, service
//!   pack, retry schedule, message time-out, hop limit);
//! * [`ndr`]: NDRs laid out as Exchange writes them, and DSNs;
//! * [`fate`]: where a message ended up, followed across every MTA;
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
pub mod echo;
pub mod exchange;
pub mod fate;
pub mod ftp;
pub mod http;
pub mod ims;
pub mod ims_config;
pub mod mail;
pub mod ndr;
pub mod net;
pub mod resolver;
pub mod smtp;
