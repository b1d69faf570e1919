//! `[router.nat]`: the NAT of a router (forwards, one-to-one pairs,
//! masquerade, ALGs, timeouts and table size).

use super::{PortOrRange, S};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// `tcp` or `udp`.
    pub proto: S<String>,
    /// A port or a range `first-last`.
    #[schemars(with = "PortOrRange")]
    pub port: S<toml::Value>,
    /// Inside address.
    pub to: S<String>,
    #[serde(default)]
    pub to_port: Option<S<u32>>,
    /// The outside interface (default: the first outside interface).
    #[serde(default)]
    pub interface: Option<S<String>>,
    /// Only from this source prefix.
    #[serde(default)]
    pub from: Option<S<String>>,
    #[serde(default)]
    pub name: Option<S<String>>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OneToOne {
    pub inside: S<String>,
    pub outside: S<String>,
    #[serde(default)]
    pub interface: Option<S<String>>,
    #[serde(default)]
    pub name: Option<S<String>>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nat {
    /// `linux`, `rfc-recommended`, `full-cone`, `restricted-cone`,
    /// `port-restricted-cone`, `symmetric`.
    pub profile: S<String>,
    /// `drop` (silent; the client times out) or `reject` (RST / ICMP).
    #[serde(default)]
    pub unsolicited: Option<S<String>>,
    /// `off`, `dnat-only` or `on`.
    #[serde(default)]
    pub hairpin: Option<S<String>>,
    /// IP fragments: `drop`, `translate` (one by one, RFC 4787 REQ-14; the
    /// RFC profiles' default) or `reassemble` (Linux's default).
    #[serde(default)]
    pub fragments: Option<S<String>>,
    /// Outside interfaces to masquerade behind: `wan0`, or with nft's
    /// port flag `wan0 random` / `wan0 fully-random` (a random port even
    /// when the original one is free).
    #[serde(default)]
    pub masquerade: Vec<S<String>>,
    #[serde(default)]
    pub forwards: Vec<Forward>,
    #[serde(default)]
    pub one_to_one: Vec<OneToOne>,
    /// `epm`, `ftp`.
    #[serde(default)]
    pub algs: Vec<S<String>>,
    /// Idle timeouts that replace the profile's, e.g. `{ tcp_established
    /// = "1h" }` for a router that forgets idle connections sooner than
    /// Linux does.
    #[serde(default)]
    pub timeouts: Option<NatTimeouts>,
    /// The most connections tracked at once (Linux's `nf_conntrack_max`;
    /// default 65536, at most 16777216). When the table is full a new
    /// connection evicts the oldest one not yet replied to or established,
    /// as the kernel's early_drop does, and is dropped if there is none.
    #[serde(default)]
    pub max_connections: Option<S<u32>>,
}

/// How long a connection may stay idle in each state before the NAT
/// forgets it (durations such as `30s`, `2h`; at most 30 days). Each field
/// replaces the profile's value; Linux's sysctl is named in brackets.
#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatTimeouts {
    /// TCP after the handshake (`nf_conntrack_tcp_timeout_established`).
    #[serde(default)]
    pub tcp_established: Option<S<String>>,
    /// TCP after the first SYN (`nf_conntrack_tcp_timeout_syn_sent`).
    #[serde(default)]
    pub tcp_syn_sent: Option<S<String>>,
    /// TCP after the SYN-ACK (`nf_conntrack_tcp_timeout_syn_recv`).
    #[serde(default)]
    pub tcp_syn_recv: Option<S<String>>,
    /// TCP after a FIN (`nf_conntrack_tcp_timeout_fin_wait`).
    #[serde(default)]
    pub tcp_fin_wait: Option<S<String>>,
    /// TCP after the other side's FIN (`nf_conntrack_tcp_timeout_close_wait`).
    #[serde(default)]
    pub tcp_close_wait: Option<S<String>>,
    /// TCP after the last FIN (`nf_conntrack_tcp_timeout_last_ack`).
    #[serde(default)]
    pub tcp_last_ack: Option<S<String>>,
    /// TCP after both FINs were acknowledged (`nf_conntrack_tcp_timeout_time_wait`).
    #[serde(default)]
    pub tcp_time_wait: Option<S<String>>,
    /// TCP after a RST (`nf_conntrack_tcp_timeout_close`).
    #[serde(default)]
    pub tcp_close: Option<S<String>>,
    /// UDP with no reply yet, or replied but younger than
    /// `udp_stream_after` (`nf_conntrack_udp_timeout`).
    #[serde(default)]
    pub udp_unreplied: Option<S<String>>,
    /// UDP that was replied to and is older than `udp_stream_after`
    /// (`nf_conntrack_udp_timeout_stream`).
    #[serde(default)]
    pub udp_replied: Option<S<String>>,
    /// How old a replied UDP flow must be before it counts as a stream
    /// (Linux: 2 s); `0s`: from its first reply.
    #[serde(default)]
    pub udp_stream_after: Option<S<String>>,
    /// ICMP queries such as echo (`nf_conntrack_icmp_timeout`).
    #[serde(default)]
    pub icmp: Option<S<String>>,
}
