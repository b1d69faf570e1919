//! The scenario file format (TOML), as serde types.
//!
//! Every table denies unknown fields; names, addresses and expectations are
//! `Spanned` so that validation can point at them. See the crate docs and
//! `scenarios/` for examples.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::ops::Range;

mod nat;
pub use nat::*;

/// A value with the byte range it came from, so that every later check can
/// point at it. In the JSON Schema it is just the value.
#[derive(Clone, Debug, PartialEq)]
pub struct S<T>(toml::Spanned<T>);

impl<T> S<T> {
    pub fn new(span: Range<usize>, value: T) -> S<T> {
        S(toml::Spanned::new(span, value))
    }
    pub fn get_ref(&self) -> &T {
        self.0.get_ref()
    }
    pub fn span(&self) -> Range<usize> {
        self.0.span()
    }
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for S<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        toml::Spanned::<T>::deserialize(d).map(S)
    }
}

impl<T: JsonSchema> JsonSchema for S<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<T>()
    }
}

/// `expect`: one expectation or a list (for the JSON Schema only).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A forward's `port`: a number or a range `"first-last"` (for the JSON Schema only).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum PortOrRange {
    Port(u16),
    Range(String),
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub title: String,
    /// Where the story comes from, e.g. `KB Q193863`.
    #[serde(default)]
    pub source: Option<String>,
    /// The symptom, in the article's words.
    #[serde(default)]
    pub symptom: Option<String>,
    /// What the base scenario teaches (printed by `explain`).
    #[serde(default)]
    pub lesson: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default, rename = "segment")]
    pub segments: Vec<Segment>,
    #[serde(default, rename = "router")]
    pub routers: Vec<Router>,
    #[serde(default, rename = "host")]
    pub hosts: Vec<Host>,
    #[serde(default, rename = "host_group")]
    pub host_groups: Vec<HostGroup>,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    #[serde(default, rename = "variant")]
    pub variants: Vec<Variant>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub name: S<String>,
    /// e.g. `1ms`, `20ms`.
    #[serde(default)]
    pub latency: Option<S<String>>,
    /// e.g. `100Mbps`, `56kbps`.
    #[serde(default)]
    pub bandwidth: Option<S<String>>,
    #[serde(default)]
    pub mtu: Option<S<u32>>,
    #[serde(default)]
    pub loss: Option<S<f64>>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub name: S<String>,
    pub segment: S<String>,
    /// `address/prefix`, e.g. `192.168.1.1/24`.
    pub address: S<String>,
    /// `inside` or `outside` (for NAT).
    #[serde(default)]
    pub role: Option<S<String>>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// Destination prefix, e.g. `0.0.0.0/0`.
    pub to: S<String>,
    pub via: S<String>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Router {
    pub name: S<String>,
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
    #[serde(default)]
    pub nat: Option<Nat>,
    /// A ruleset file (`iptables-save` output or `nft -j list ruleset`
    /// JSON), relative to the scenario file: its NAT rules follow those of
    /// `[router.nat]`, its filter becomes the router's. Interface names in
    /// it must be this router's.
    #[serde(default)]
    pub rules: Option<S<String>>,
    /// An `ipset save` file for `-m set` matches in `rules`.
    #[serde(default)]
    pub ipsets: Option<S<String>>,
    /// The router runs its own endpoint mapper on TCP 135 (a Windows
    /// NT-based firewall): it answers on every router address, ahead of
    /// NAT rules.
    #[serde(default)]
    pub own_epm: bool,
    /// Clamp the MSS of forwarded SYNs, as iptables -j TCPMSS: `"pmtu"`
    /// (--clamp-mss-to-pmtu) or a number (--set-mss).
    #[serde(default)]
    #[schemars(with = "Option<PortOrRange>")]
    pub mss_clamp: Option<S<toml::Value>>,
    /// Drop every ICMP message the router would forward (a firewall that
    /// filters ICMP: the PMTUD black hole).
    #[serde(default)]
    pub block_icmp: bool,
    /// The router answers pings on its own addresses (default true).
    #[serde(default)]
    pub answer_ping: Option<bool>,
    /// TCP/UDP reaching a closed port of the router's own addresses gets
    /// RST / ICMP port unreachable (default true, as Linux); false: silence.
    /// What arrives from outside for the NAT's external address is the NAT
    /// profile's `unsolicited` policy's to decide first.
    #[serde(default)]
    pub reject_closed_ports: Option<bool>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: S<String>,
    pub segment: S<String>,
    pub address: S<String>,
    #[serde(default)]
    pub gateway: Option<S<String>>,
    /// DNS servers in search order.
    #[serde(default)]
    pub dns: Vec<S<String>>,
    /// `windows` (3 SYNs, 21 s) or `linux`.
    #[serde(default)]
    pub tcp_profile: Option<S<String>>,
    #[serde(default)]
    pub dns_server: Option<DnsServer>,
    #[serde(default)]
    pub smtp_server: Option<SmtpServer>,
    #[serde(default)]
    pub mta: Option<Mta>,
    #[serde(default)]
    pub ims: Option<Ims>,
    #[serde(default)]
    pub exchange_rpc: Option<ExchangeRpc>,
    #[serde(default)]
    pub http_server: Option<HttpServer>,
    #[serde(default)]
    pub ftp_server: Option<FtpServer>,
    /// UDP echo ("seen a.b.c.d:p") on these ports, for NAT-type probes.
    #[serde(default)]
    pub udp_echo: Vec<S<u32>>,
    /// Accept-and-echo services: `["tcp/8443", "udp/1194"]`. Each records
    /// the source it saw, for `seen-from` expectations.
    #[serde(default)]
    pub listen: Vec<S<String>>,
}

/// `count` identical hosts: `name[0]` … `name[count-1]`, addresses counting
/// up from `address`.
#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostGroup {
    pub name: S<String>,
    pub count: S<u32>,
    pub segment: S<String>,
    /// The first host's `address/prefix`; each next host takes the next address.
    pub address: S<String>,
    #[serde(default)]
    pub gateway: Option<S<String>>,
    #[serde(default)]
    pub dns: Vec<S<String>>,
    #[serde(default)]
    pub tcp_profile: Option<S<String>>,
    #[serde(default)]
    pub listen: Vec<S<String>>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub origin: S<String>,
    /// `A name address` or `MX name preference exchange`.
    pub records: Vec<S<String>>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsServer {
    pub zones: Vec<Zone>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpServer {
    pub hostname: S<String>,
    /// Domains it accepts mail for.
    pub domains: Vec<S<String>>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mta {
    pub hostname: S<String>,
    #[serde(default)]
    pub smart_host: Option<S<String>>,
    /// e.g. `30m`.
    #[serde(default)]
    pub retry_interval: Option<S<String>>,
    #[serde(default)]
    pub give_up_after: Option<S<String>>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingEntry {
    pub domain: S<String>,
    #[serde(default)]
    pub accept_as_inbound: bool,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ims {
    pub hostname: S<String>,
    #[serde(default = "default_org")]
    pub organization: String,
    #[serde(default = "default_site")]
    pub site: String,
    #[serde(default = "default_server")]
    pub server: String,
    /// Site addressing: the default SMTP proxy domain.
    pub site_domain: S<String>,
    #[serde(default)]
    pub service_pack: Option<S<u32>>,
    /// `TYPE ADDRESS COST`, e.g. `SMTP * 1`.
    #[serde(default = "default_spaces")]
    pub address_spaces: Vec<S<String>>,
    /// "Forward all messages to host" (an IP address).
    #[serde(default)]
    pub forward_all_to: Option<S<String>>,
    /// "Reroute incoming SMTP mail".
    #[serde(default)]
    pub reroute: bool,
    #[serde(default)]
    pub routing: Vec<RoutingEntry>,
    #[serde(default)]
    pub mailboxes: Vec<String>,
    /// MSExchangeIMC\Parameters values (`OverrideProxyOut`, `SiteDomain`).
    #[serde(default)]
    pub registry: BTreeMap<String, String>,
    #[serde(default)]
    pub retry_interval: Option<S<String>>,
    /// Secondary SMTP proxy addresses, `alias@domain` (alias a mailbox).
    #[serde(default)]
    pub proxy_addresses: Vec<S<String>>,
    /// Connections tab retry intervals, e.g. `["15m", "30m", "1h", "4h"]`
    /// (the default); the last repeats.
    #[serde(default)]
    pub retry_schedule: Vec<S<String>>,
    /// Message time-out (default `48h`).
    #[serde(default)]
    pub expire_after: Option<S<String>>,
    /// Received fields beyond which a message is looping (default 100).
    #[serde(default)]
    pub max_hops: Option<S<u32>>,
}

fn default_org() -> String {
    "Microsoft".into()
}
fn default_site() -> String {
    "SITE".into()
}
fn default_server() -> String {
    "SERVER".into()
}
fn default_spaces() -> Vec<S<String>> {
    vec![S::new(0..0, "SMTP * 1".to_string())]
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRpc {
    /// First dynamic port the RPC runtime hands out (NT: 1025).
    #[serde(default)]
    pub first_dynamic_port: Option<S<u32>>,
    /// Registry-fixed port of the information store (MSExchangeIS\ParametersSystem "TCP/IP port").
    #[serde(default)]
    pub store_port: Option<S<u32>>,
    /// Registry-fixed port of the directory (MSExchangeDS\Parameters "TCP/IP port").
    #[serde(default)]
    pub directory_port: Option<S<u32>>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpServer {
    /// The server port: required for tcp-connect and udp-send; dns-lookup 53, http-get 80, ftp-get 21 by default.
    #[serde(default)]
    pub port: Option<S<u32>>,
    /// path → body.
    pub pages: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FtpServer {
    /// file name → size in bytes.
    pub files: BTreeMap<String, S<u32>>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: S<String>,
    /// `ping`, `tcp-connect`, `tcp-send`, `udp-send`, `send-mail`,
    /// `dns-lookup`, `outlook-connect`, `http-get`, `ftp-get`, `nat-type`,
    /// `nat-table`, `wait`.
    pub action: S<String>,
    /// The acting host: a host's name, a group member `GROUP[k]`, or
    /// `GROUP[*]` to run the step from every member at once (it passes when
    /// each member meets `expect`).
    #[serde(default)]
    pub from: Option<S<String>>,
    /// A host name or address (ping, tcp-connect, http-get, ftp-get,
    /// outlook-connect) or a mail address (send-mail).
    #[serde(default)]
    pub to: Option<S<String>>,
    #[serde(default)]
    pub port: Option<S<u32>>,
    /// tcp-connect, udp-send: the client's source port (default: ephemeral).
    #[serde(default)]
    pub source_port: Option<S<u32>>,
    /// udp-send: the datagram's text (default `natsim probe`), at most
    /// 8164 bytes; above the MTU the host fragments it.
    #[serde(default)]
    pub payload: Option<S<String>>,
    /// ping: bytes of echo data, as `ping -l` (Windows) or `ping -s`
    /// (Linux); default 32. Above the MTU the host fragments the request.
    #[serde(default)]
    pub size: Option<S<u32>>,
    /// ping, udp-send: the request's IP TTL, 1–255 (default the host
    /// profile's: 128 windows, 64 linux). Steps with 1, 2, 3, … trace the
    /// route: each router on the way answers ttl-exceeded.
    #[serde(default)]
    pub ttl: Option<S<u32>>,
    /// nat-table: the router whose table to list.
    #[serde(default)]
    pub router: Option<S<String>>,
    /// When the step starts: `+5s` after the previous step ended.
    #[serde(default)]
    pub at: Option<S<String>>,
    /// Later steps start while this one runs; its result is taken when the
    /// scenario ends (or its time runs out).
    #[serde(default)]
    pub background: Option<S<bool>>,
    /// tcp-connect: keep the connection open under this name for a later
    /// step's `reuse`.
    #[serde(default)]
    pub keep: Option<S<String>>,
    /// tcp-send: send on a connection a previous step kept.
    #[serde(default)]
    pub reuse: Option<S<String>>,
    /// send-mail: `settled` (default) ends the step at the message's first
    /// resting state, a deferral included; `final` follows it through every
    /// retry to a mailbox, a bounce or NDR, or the queue's expiry.
    #[serde(default)]
    pub until: Option<S<String>>,
    /// send-mail: the envelope sender (default `postmaster@` the sending
    /// server's domain: an IMS's `site_domain`, an MTA's `hostname`).
    #[serde(default)]
    pub sender: Option<S<String>>,
    /// send-mail: the message's subject (default `Test Subject`).
    #[serde(default)]
    pub subject: Option<S<String>>,
    /// dns-lookup: the name to look up (its record type goes in `type`).
    #[serde(default)]
    pub query: Option<S<String>>,
    /// dns-lookup: the record type to ask for, `A` (default) or `MX`.
    #[serde(default, rename = "type")]
    pub rtype: Option<S<String>>,
    /// outlook-connect: `dialled-address` (default) or `tower-address`.
    #[serde(default)]
    pub address_mode: Option<S<String>>,
    /// ftp-get: `active`, `eprt`, `passive`, `epsv`.
    #[serde(default)]
    pub mode: Option<S<String>>,
    /// http-get: the path to ask for (default `/`).
    #[serde(default)]
    pub path: Option<S<String>>,
    /// ftp-get: the file to download.
    #[serde(default)]
    pub file: Option<S<String>>,
    /// wait: how long (e.g. `2h`); other steps: the most to wait.
    #[serde(default)]
    pub duration: Option<S<String>>,
    /// nat-type: the two probe servers (addresses or host names).
    #[serde(default)]
    pub servers: Vec<S<String>>,
    /// Expectations: one string or a list, all must hold. Required: write
    /// `expect = "anything"` to run a step for its effect alone.
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany>")]
    pub expect: Option<S<toml::Value>>,
    /// Prose for `explain`.
    #[serde(default)]
    pub note: Option<S<String>>,
}

#[derive(Debug, Deserialize, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: S<String>,
    /// What this variant teaches.
    #[serde(default)]
    pub lesson: Option<String>,
    /// Routers replaced (by name) or added.
    #[serde(default, rename = "router")]
    pub routers: Vec<Router>,
    /// Hosts replaced (by name) or added.
    #[serde(default, rename = "host")]
    pub hosts: Vec<Host>,
    /// Nodes removed (`"web"`), or any named item by path
    /// (`"router.edge.nat.forwards.smtp"`).
    #[serde(default)]
    pub remove: Vec<S<String>>,
    /// Step expectations replaced, by step name.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, OneOrMany>")]
    pub expect: BTreeMap<String, S<toml::Value>>,
    /// Set one field: `"router.edge.nat.hairpin" = "on"`. The path walks
    /// tables by key and lists by their items' `name`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub set: BTreeMap<String, S<toml::Value>>,
    /// Append items to a list: `"router.edge.nat.forwards" = [{ ... }]` (a
    /// list the file left out starts empty).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub add: BTreeMap<String, S<toml::Value>>,
    /// Steps replaced (by name) or added.
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
}
