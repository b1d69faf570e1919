//! The typed scenario model: what [`crate::load`] produces and the only
//! thing [`crate::build`] and [`crate::run`] consume.
//!
//! Every address is parsed, every reference is an index checked at load
//! time, every step is an [`Action`] that carries only its own fields, and
//! every expectation is an [`Expect`]. Nothing here is a string that a
//! later stage must parse or look up by name.

use crate::expect::Expect;
pub use crate::l4::L4;
use natsim_apps::dns::Zone;
use natsim_apps::exchange::AddressMode;
use natsim_apps::ftp::FtpMode;
use natsim_apps::mail::ImsConfig;
use natsim_nat::{NatConfig, Prefix, Role};
use natsim_sim::{LinkParams, MssClamp, TcpProfile};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

/// Index of a segment in [`Model::segments`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SegIx(pub usize);
/// Index of a host in [`Model::hosts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct HostIx(pub usize);
/// Index of a router in [`Model::routers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RouterIx(pub usize);

/// One scenario, base or variant, fully resolved.
#[derive(Clone, Debug, Serialize)]
pub struct Model {
    pub title: String,
    pub source: Option<String>,
    pub symptom: Option<String>,
    pub lesson: Option<String>,
    pub seed: Option<u64>,
    pub segments: Vec<SegmentSpec>,
    pub routers: Vec<RouterSpec>,
    pub hosts: Vec<HostSpec>,
    pub steps: Vec<StepSpec>,
    /// Names of the connections steps keep open (`keep`/`reuse`).
    pub connections: Vec<String>,
}

/// Index of a kept connection in [`Model::connections`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ConnIx(pub usize);

#[derive(Clone, Debug, Serialize)]
pub struct SegmentSpec {
    pub name: String,
    #[serde(serialize_with = "link_params")]
    pub link: LinkParams,
}

fn link_params<S: serde::Serializer>(p: &LinkParams, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("LinkParams", 4)?;
    st.serialize_field("latency", &format!("{:?}", p.latency))?;
    st.serialize_field("bandwidth_bps", &p.bandwidth_bps)?;
    st.serialize_field("mtu", &p.mtu)?;
    st.serialize_field("loss", &p.loss)?;
    st.end()
}

#[derive(Clone, Debug, Serialize)]
pub struct RouterSpec {
    pub name: String,
    #[serde(skip)]
    pub span: Range<usize>,
    pub interfaces: Vec<IfaceSpec>,
    pub routes: Vec<RouteSpec>,
    /// The NAT engine's configuration (rules already built and checked).
    #[serde(serialize_with = "nat_summary")]
    pub nat: Option<NatConfig>,
    /// Runs its own endpoint mapper on TCP 135 (an NT-based firewall).
    pub own_epm: bool,
    /// Clamp forwarded SYNs' MSS (iptables -j TCPMSS).
    #[serde(serialize_with = "mss")]
    pub mss_clamp: Option<MssClamp>,
    /// Drop every ICMP message it would forward.
    pub block_icmp: bool,
    /// Answer pings on its own addresses (default true).
    pub answer_ping: bool,
    /// RST / ICMP port unreachable for closed local ports (default true).
    pub reject_closed_ports: bool,
    /// How many of the last NAT rules came from the router's `rules` file
    /// (its filter did too), so a tool can swap that file for another.
    pub file_rules: usize,
}

fn mss<S: serde::Serializer>(m: &Option<MssClamp>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        None => s.serialize_none(),
        Some(MssClamp::Pmtu) => s.serialize_some("pmtu"),
        Some(MssClamp::To(n)) => s.serialize_some(n),
    }
}

fn nat_summary<S: serde::Serializer>(n: &Option<NatConfig>, s: S) -> Result<S::Ok, S::Error> {
    match n {
        None => s.serialize_none(),
        Some(c) => s.serialize_some(&crate::nat_json::nat_json(c)),
    }
}

impl RouterSpec {
    /// The address others reach this router by: its first outside
    /// interface, else its first interface.
    pub fn public_addr(&self) -> Option<Ipv4Addr> {
        self.interfaces
            .iter()
            .find(|i| i.role == Role::Outside)
            .or(self.interfaces.first())
            .map(|i| i.addr)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct IfaceSpec {
    pub name: String,
    pub segment: SegIx,
    pub addr: Ipv4Addr,
    pub len: u8,
    #[serde(serialize_with = "role")]
    pub role: Role,
    #[serde(skip)]
    pub span: Range<usize>,
}

fn role<S: serde::Serializer>(r: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match r {
        Role::Inside => "inside",
        Role::Outside => "outside",
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct RouteSpec {
    #[serde(serialize_with = "prefix")]
    pub to: Prefix,
    pub via: Ipv4Addr,
    #[serde(skip)]
    pub span: Range<usize>,
}

fn prefix<S: serde::Serializer>(p: &Prefix, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string())
}

#[derive(Clone, Debug, Serialize)]
pub struct HostSpec {
    pub name: String,
    #[serde(skip)]
    pub span: Range<usize>,
    pub segment: SegIx,
    pub addr: Ipv4Addr,
    pub len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// `windows` when the file names none.
    #[serde(serialize_with = "tcp_profile")]
    pub tcp: TcpProfile,
    pub apps: Vec<AppSpec>,
}

fn tcp_profile<S: serde::Serializer>(p: &TcpProfile, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name)
}

impl HostSpec {
    /// The domain its mail server writes its own addresses in: an IMS's
    /// site domain, an MTA's host name (RFC 5321 §2.3.5: fully qualified).
    pub fn mail_domain(&self) -> Option<&str> {
        self.apps.iter().find_map(|a| match a {
            AppSpec::Mta(m) => Some(m.hostname.as_str()),
            AppSpec::Ims(i) => Some(i.config.site_domain.as_str()),
            _ => None,
        })
    }
    pub fn mailer(&self) -> Option<Mailer> {
        self.apps.iter().find_map(|a| match a {
            AppSpec::Mta(_) => Some(Mailer::Mta),
            AppSpec::Ims(_) => Some(Mailer::Ims),
            _ => None,
        })
    }
}

/// Which mail transfer agent a host runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Mailer {
    Mta,
    Ims,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "app", rename_all = "kebab-case")]
pub enum AppSpec {
    DnsServer {
        #[serde(skip)]
        zones: Vec<Zone>,
    },
    SmtpServer {
        hostname: String,
        domains: Vec<String>,
    },
    Mta(MtaSpec),
    Ims(Box<ImsSpec>),
    ExchangeRpc {
        first_dynamic_port: u16,
        store_port: Option<u16>,
        directory_port: Option<u16>,
    },
    HttpServer {
        port: u16,
        pages: BTreeMap<String, String>,
    },
    FtpServer {
        files: BTreeMap<String, u32>,
    },
    UdpEcho {
        port: u16,
    },
    Listen(Listener),
}

impl AppSpec {
    /// The name of the service holding `port` for `proto`, if this one
    /// does: a client socket bound there would fail in a real stack
    /// (EADDRINUSE), where the simulator would hand its replies to the
    /// service instead.
    pub fn holds(&self, proto: L4, port: u16) -> Option<&'static str> {
        match (self, proto) {
            (AppSpec::UdpEcho { port: p }, L4::Udp) => (*p == port).then_some("udp_echo"),
            (AppSpec::Listen(l), _) => (l.proto == proto && l.port == port).then_some("listen"),
            (AppSpec::HttpServer { port: p, .. }, L4::Tcp) => (*p == port).then_some("http_server"),
            (AppSpec::FtpServer { .. }, L4::Tcp) => (port == 21).then_some("ftp_server"),
            (AppSpec::SmtpServer { .. }, L4::Tcp) => (port == 25).then_some("smtp_server"),
            (AppSpec::Ims(_), L4::Tcp) => (port == 25).then_some("ims"),
            (
                AppSpec::ExchangeRpc {
                    store_port,
                    directory_port,
                    ..
                },
                L4::Tcp,
            ) => (port == 135 || Some(port) == *store_port || Some(port) == *directory_port)
                .then_some("exchange_rpc"),
            (AppSpec::DnsServer { .. }, L4::Udp) => (port == 53).then_some("dns_server"),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct MtaSpec {
    pub hostname: String,
    pub smart_host: Option<Ipv4Addr>,
    pub retry_interval: Option<Duration>,
    pub give_up_after: Option<Duration>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImsSpec {
    pub hostname: String,
    #[serde(skip)]
    pub config: ImsConfig,
}

/// An accept-and-echo service on one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Listener {
    pub proto: L4,
    pub port: u16,
}

/// Where a `send-mail` step stops following its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailUntil {
    /// At its first resting state: delivered, handed off, bounced, NDR'd
    /// or deferred.
    Settled,
    /// Past every deferral, to delivery, a bounce or NDR, or the queue's
    /// expiry.
    Final,
}

/// Where a step is aimed: an address (node names are resolved at load
/// time), or a DNS name the acting host resolves through its `dns`
/// servers as part of the step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Target {
    Addr(Ipv4Addr),
    Name(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Name(n) => f.write_str(n),
        }
    }
}

/// `5s`, `1.5ms`: as the file writes durations (and `latency` shows).
fn duration_text<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{d:?}"))
}

#[derive(Clone, Debug, Serialize)]
pub struct StepSpec {
    pub name: String,
    #[serde(skip)]
    pub span: Range<usize>,
    /// Extra virtual time between the previous step's end and this start.
    #[serde(serialize_with = "duration_text")]
    pub delay: Duration,
    /// Later steps start while this one runs.
    pub background: bool,
    /// The most virtual time the step may take.
    #[serde(serialize_with = "duration_text")]
    pub limit: Duration,
    pub expect: Vec<ExpectSpec>,
    pub note: Option<String>,
    pub action: Action,
    /// `from = "GROUP[*]"`: the action runs from each of these hosts at
    /// once and must meet its expectations from every one. Empty: once,
    /// from the action's own host.
    pub each: Vec<HostIx>,
}

/// One expectation as written and as parsed.
#[derive(Clone, Debug, Serialize)]
pub struct ExpectSpec {
    pub text: String,
    #[serde(skip)]
    pub span: Range<usize>,
    pub expect: Expect,
}

/// What a step does, with exactly the fields that action takes.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    Wait,
    Ping {
        from: HostIx,
        to: Target,
        /// Bytes of echo data.
        size: u16,
        /// IP TTL of the requests (None: the host profile's).
        ttl: Option<u8>,
    },
    TcpConnect {
        from: HostIx,
        to: Target,
        port: u16,
        source_port: Option<u16>,
        /// Hold the connection open as [`Model::connections`]`[k]`.
        keep: Option<ConnIx>,
    },
    TcpSend {
        /// The connection a previous `tcp-connect` kept.
        reuse: ConnIx,
        payload: Vec<u8>,
    },
    UdpSend {
        from: HostIx,
        to: Target,
        port: u16,
        source_port: Option<u16>,
        payload: Vec<u8>,
        /// IP TTL of the datagram (None: the host profile's).
        ttl: Option<u8>,
    },
    SendMail {
        from: HostIx,
        mailer: Mailer,
        until: MailUntil,
        to: String,
        sender: String,
        subject: String,
    },
    DnsLookup {
        from: HostIx,
        /// The server to ask (default: the host's `dns` servers in order).
        server: Option<Ipv4Addr>,
        port: u16,
        query: String,
        #[serde(skip)]
        rtype: hickory_proto::rr::RecordType,
    },
    OutlookConnect {
        from: HostIx,
        to: Target,
        mode: AddressMode,
    },
    HttpGet {
        from: HostIx,
        to: Target,
        port: u16,
        path: String,
    },
    FtpGet {
        from: HostIx,
        to: Target,
        port: u16,
        file: String,
        mode: FtpMode,
    },
    NatType {
        from: HostIx,
        servers: [(Ipv4Addr, Option<HostIx>); 2],
    },
    NatTable {
        router: RouterIx,
    },
}

impl Action {
    /// The same action from another host: a `GROUP[*]` step's member.
    pub fn from_host(&self, h: HostIx) -> Action {
        let mut a = self.clone();
        match &mut a {
            Action::Ping { from, .. }
            | Action::TcpConnect { from, .. }
            | Action::UdpSend { from, .. }
            | Action::SendMail { from, .. }
            | Action::DnsLookup { from, .. }
            | Action::OutlookConnect { from, .. }
            | Action::HttpGet { from, .. }
            | Action::FtpGet { from, .. }
            | Action::NatType { from, .. } => *from = h,
            Action::Wait | Action::TcpSend { .. } | Action::NatTable { .. } => {}
        }
        a
    }

    /// The action's name as the file spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Wait => "wait",
            Action::Ping { .. } => "ping",
            Action::TcpConnect { .. } => "tcp-connect",
            Action::TcpSend { .. } => "tcp-send",
            Action::UdpSend { .. } => "udp-send",
            Action::SendMail { .. } => "send-mail",
            Action::DnsLookup { .. } => "dns-lookup",
            Action::OutlookConnect { .. } => "outlook-connect",
            Action::HttpGet { .. } => "http-get",
            Action::FtpGet { .. } => "ftp-get",
            Action::NatType { .. } => "nat-type",
            Action::NatTable { .. } => "nat-table",
        }
    }
}
