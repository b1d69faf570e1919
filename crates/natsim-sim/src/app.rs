//! Applications: sans-IO state machines a host polls with its sockets.
//!
//! An [`App`] owns smoltcp socket handles it created in `poll` through
//! [`AppCx::sockets`]; the host calls `poll` after every interface poll
//! and at the app's own [`App::poll_at`]. Apps never read a clock: `now`
//! is in the context, and randomness comes from the host's seeded stream.

use natsim_nat::Instant;
use smoltcp::iface::{Interface, SocketSet};
use std::any::Any;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// A program running on a host (or a router's local stack).
pub trait App: Any {
    /// Called whenever the host is polled and at [`App::poll_at`].
    fn poll(&mut self, cx: &mut AppCx<'_>);
    /// Earliest virtual time the app wants to run again without network
    /// activity (its timers).
    fn poll_at(&self) -> Option<Instant> {
        None
    }
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// What a host knows about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    pub name: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers in the order the resolver tries them.
    pub dns: Vec<Ipv4Addr>,
}

impl HostInfo {
    /// Where a packet for `dst` goes first: `dst` itself on the host's
    /// subnet, else the gateway; None when the host has no route.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if natsim_nat::Prefix::new(self.addr, self.prefix_len).contains(dst) {
            Some(dst)
        } else {
            self.gateway
        }
    }

    /// Why a packet for `dst` can't leave (smoltcp drops it without a
    /// word when its route lookup fails), for the host's log.
    pub fn no_route(&self, dst: Ipv4Addr) -> Option<String> {
        self.next_hop(dst).is_none().then(|| {
            format!(
                "no route to {dst}: it is outside {}/{} and the host has no gateway, so nothing is sent",
                self.addr, self.prefix_len
            )
        })
    }
}

/// How a host's TCP gives up on a connect that gets no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProfile {
    pub name: &'static str,
    /// When SYN retransmissions go out, after the first SYN.
    pub syn_retransmits: Vec<Duration>,
    /// When the connect attempt reports "timed out", after the first SYN.
    pub connect_timeout: Duration,
    /// How long an unanswered ARP for the next hop takes to fail a
    /// connect with "host unreachable" (no SYN ever left). None: the OS
    /// does not tell TCP, and the connect times out at its deadline.
    pub arp_timeout: Option<Duration>,
    /// The IP TTL of every packet the host originates.
    pub ttl: u8,
    /// Whether UDP datagrams and echo requests go out with Don't Fragment
    /// (Linux: IP_PMTUDISC_WANT by default; Windows: no DF unless
    /// IP_DONTFRAGMENT or `ping -f`). TCP always sets it (PMTUD).
    pub df_on_datagrams: bool,
    /// Whether the stack's own echo replies carry Don't Fragment. Linux's
    /// ICMP socket is IP_PMTUDISC_DONT (net/ipv4/icmp.c), so a reply too big
    /// for a link is fragmented on the way (checked in namespaces); the
    /// Windows profile keeps smoltcp's DF (not checked against Windows).
    pub df_on_echo_replies: bool,
    /// Where the host picks its ephemeral ports (first, last).
    pub ephemeral_ports: (u16, u16),
}

impl TcpProfile {
    /// Windows NT/2000/XP: TcpMaxConnectRetransmissions = 2 with a 3 s
    /// initial RTO: SYNs at 0, 3 and 9 s, then "timed out" at 21 s.
    /// DefaultTTL 128. An unanswered ARP just loses the SYN (each
    /// retransmission ARPs again) and connect() times out at 21 s.
    pub fn windows() -> TcpProfile {
        TcpProfile {
            name: "windows",
            syn_retransmits: vec![Duration::from_secs(3), Duration::from_secs(9)],
            connect_timeout: Duration::from_secs(21),
            arp_timeout: None,
            ttl: 128,
            df_on_datagrams: false,
            df_on_echo_replies: true,
            // The IANA dynamic range (RFC 6335 §6), as Windows since Vista
            // picks; NT's 1025–5000 would collide with the Exchange
            // server's dynamic RPC ports in the KB scenarios' traces.
            ephemeral_ports: (49152, 65535),
        }
    }
    /// Linux defaults (tcp_syn_retries = 6): SYNs at 0, 1, 3, 7, 15, 31,
    /// 63 s, giving up at 127 s. net.ipv4.ip_default_ttl = 64; the
    /// neighbour entry fails after mcast_solicit = 3 probes 1 s apart
    /// (retrans_time_ms = 1000), and connect() returns EHOSTUNREACH.
    pub fn linux() -> TcpProfile {
        TcpProfile {
            name: "linux",
            syn_retransmits: [1, 3, 7, 15, 31, 63]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            connect_timeout: Duration::from_secs(127),
            arp_timeout: Some(Duration::from_secs(3)),
            ttl: 64,
            df_on_datagrams: true,
            df_on_echo_replies: false,
            // net.ipv4.ip_local_port_range's default.
            ephemeral_ports: (32768, 60999),
        }
    }
    pub fn by_name(name: &str) -> Option<TcpProfile> {
        match name {
            "windows" => Some(Self::windows()),
            "linux" => Some(Self::linux()),
            _ => None,
        }
    }
}

impl Default for TcpProfile {
    fn default() -> Self {
        Self::windows()
    }
}

/// A line for reports and `explain`: what an app did, when.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AppEvent {
    pub at: Instant,
    pub host: String,
    pub app: &'static str,
    pub text: String,
}

/// An ICMP error (destination unreachable, time exceeded) a host received
/// about a TCP or UDP packet it sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IcmpError {
    pub at: Instant,
    /// Who sent the error (a router, or the destination itself).
    pub from: Ipv4Addr,
    pub icmp_type: u8,
    pub code: u8,
}

/// The latest ICMP error per quoted flow: key is (IP protocol, local port,
/// remote address, remote port) of the packet the error quotes (RFC 792:
/// the IP header plus the first 8 bytes, enough for both ports).
pub type IcmpErrors = BTreeMap<(u8, u16, Ipv4Addr, u16), IcmpError>;

/// What an app may touch while it runs.
pub struct AppCx<'a> {
    pub now: Instant,
    pub iface: &'a mut Interface,
    pub sockets: &'a mut SocketSet<'static>,
    pub host: &'a HostInfo,
    pub rng: &'a mut rand_chacha::ChaCha8Rng,
    pub log: &'a mut Vec<AppEvent>,
    pub tcp: &'a TcpProfile,
    /// ICMP errors this host received recently (kept for the profile's
    /// connect timeout), so connects and probes can tell "unreachable"
    /// from "timed out"; smoltcp's sockets ignore ICMP errors.
    pub icmp_errors: &'a IcmpErrors,
    /// When the first SYN of each connection in SYN-SENT left the host,
    /// keyed by (local port, remote address, remote port): the connect
    /// deadline runs from the wire, not from the connect() call.
    pub first_syn: &'a BTreeMap<(u16, Ipv4Addr, u16), Instant>,
}

impl AppCx<'_> {
    /// Records a line in the host's log.
    pub fn log(&mut self, app: &'static str, text: impl Into<String>) {
        self.log.push(AppEvent {
            at: self.now,
            host: self.host.name.clone(),
            app,
            text: text.into(),
        });
    }
    /// The latest ICMP error about our `proto` packets from `local_port`
    /// to `remote`, if it arrived at or after `since`.
    pub fn icmp_error(
        &self,
        proto: u8,
        local_port: u16,
        remote: (Ipv4Addr, u16),
        since: Instant,
    ) -> Option<IcmpError> {
        self.icmp_errors
            .get(&(proto, local_port, remote.0, remote.1))
            .filter(|e| e.at >= since)
            .copied()
    }
    /// A fresh ephemeral port in the profile's range, from the host's
    /// seeded stream.
    pub fn ephemeral_port(&mut self) -> u16 {
        use rand::Rng;
        let (first, last) = self.tcp.ephemeral_ports;
        self.rng.gen_range(first..=last)
    }
}
