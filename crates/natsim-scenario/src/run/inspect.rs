//! The two actions that inspect the NAT rather than use a service:
//! `nat-type` (RFC 5780-style classification from inside, run at once)
//! and `nat-table` (the router's connection table, read at the step).

use super::Actual;
use crate::build::Built;
use crate::expect::{Behaviour, Outcome};
use crate::model::*;
use natsim_nat::{Instant, Proto};
use natsim_sim::probe::UdpPeer;
use natsim_sim::{AppId, Sim};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// RFC 5780-style classification from inside: mapping by comparing the
/// endpoint each server sees; filtering by who may then send in. Each run
/// uses fresh source ports, so a second run measures afresh.
pub(super) fn nat_type(
    b: &mut Built,
    from: HostIx,
    servers: &[(Ipv4Addr, Option<HostIx>); 2],
    apps: &mut Vec<AppId>,
) -> Actual {
    let node = b.hosts[from.0];
    let (s1, s2) = (servers[0].0, servers[1].0);
    let n1 = servers[0].1.map(|h| b.hosts[h.0]);
    let n2 = servers[1].1.map(|h| b.hosts[h.0]);
    let base = b.next_probe_port();
    let sim = &mut b.sim;
    let seen = |sim: &Sim, id: AppId, k: usize| -> Option<String> {
        let p = sim.app::<UdpPeer>(id)?;
        let d = &p.received.get(k)?.2;
        String::from_utf8_lossy(d)
            .strip_prefix("seen ")
            .map(String::from)
    };
    let mut a = Actual::default();
    let Ok(pa) = sim.add_app(node, Box::new(UdpPeer::new(base))) else {
        a.outcome = Some(Outcome::Failed);
        return a;
    };
    apps.push(pa);
    let mut mapped = Vec::new();
    for (k, to) in [(s1, 3478), (s1, 3479), (s2, 3478)].into_iter().enumerate() {
        sim.with_app::<UdpPeer, _>(pa, |p| p.send(to, b"binding request"));
        sim.run_until_pred(Duration::from_secs(2), |sm| seen(sm, pa, k).is_some());
        mapped.push(seen(sim, pa, k).unwrap_or_else(|| "none".into()));
    }
    let mapping = if mapped[0] == mapped[2] {
        Behaviour::EndpointIndependent
    } else if mapped[0] == mapped[1] {
        Behaviour::AddressDependent
    } else {
        Behaviour::AddressAndPortDependent
    };
    let Ok(pb) = sim.add_app(node, Box::new(UdpPeer::new(base + 1))) else {
        a.outcome = Some(Outcome::Failed);
        return a;
    };
    apps.push(pb);
    sim.with_app::<UdpPeer, _>(pb, |p| p.send((s1, 3478), b"binding request"));
    sim.run_until_pred(Duration::from_secs(2), |sm| seen(sm, pb, 0).is_some());
    let target: Option<SocketAddrV4> = seen(sim, pb, 0).and_then(|m| m.parse().ok());
    let (mut other_port, mut other_addr) = (false, false);
    if let (Some(t), Some(n1), Some(n2)) = (target, n1, n2) {
        for (k, srv) in [n1, n2].into_iter().enumerate() {
            if let Ok(q) = sim.add_app(srv, Box::new(UdpPeer::new(3480 + (base % 1000)))) {
                apps.push(q);
                sim.with_app::<UdpPeer, _>(q, |p| p.send((*t.ip(), t.port()), b"unsolicited"));
                let before = sim.app::<UdpPeer>(pb).map_or(0, |p| p.received.len());
                sim.run_for(Duration::from_secs(2));
                let got = sim.app::<UdpPeer>(pb).map_or(0, |p| p.received.len()) > before;
                if k == 0 {
                    other_port = got;
                } else {
                    other_addr = got;
                }
            }
        }
    }
    // One unanswered probe and the classification would be a guess.
    if let Some(k) = mapped.iter().position(|m| m == "none") {
        let (srv, port) = [(s1, 3478), (s1, 3479), (s2, 3478)][k];
        a.outcome = Some(Outcome::Failed);
        a.text = format!(
            "no answer from {srv}:{port}: cannot classify (seen as {})",
            mapped.join(", ")
        );
        return a;
    }
    if target.is_none() {
        a.outcome = Some(Outcome::Failed);
        a.text = "no answer to the filtering probe: cannot classify".into();
        return a;
    }
    let filtering = if other_addr {
        Behaviour::EndpointIndependent
    } else if other_port {
        Behaviour::AddressDependent
    } else {
        Behaviour::AddressAndPortDependent
    };
    a.outcome = Some(Outcome::Classified);
    a.text = format!(
        "mapping {}, filtering {} (seen as {})",
        mapping.word(),
        filtering.word(),
        mapped.join(", ")
    );
    a.mapping = Some(mapping);
    a.filtering = Some(filtering);
    a
}

/// The router's NAT table now.
pub(super) fn nat_table(b: &Built, m: &Model, r: RouterIx) -> Actual {
    let mut a = Actual::default();
    let Some(nat) = b.sim.nat(b.routers[r.0]) else {
        a.outcome = Some(Outcome::Failed);
        a.text = format!("router `{}` has no NAT", m.routers[r.0].name);
        return a;
    };
    let now = b.sim.now();
    let mut lines = Vec::new();
    for c in nat.connections() {
        let left = c.expires.saturating_duration_since(now).as_secs();
        // conntrack -L shows a TCP entry's state; the teaching case needs
        // it (an entry in TIME_WAIT, a half-open one in SYN_SENT).
        let state = c
            .tcp_state
            .map_or(String::new(), |s| format!(" {}", s.name()));
        let (proto, Some((inside, outside))) = (c.original.proto, c.mapping) else {
            lines.push(format!(
                "{}{state} (no mapping; expires in {left} s)",
                c.original
            ));
            continue;
        };
        let l4 = match proto {
            Proto::Tcp => L4::Tcp,
            Proto::Udp => L4::Udp,
            Proto::Icmp => {
                // An ICMP query's "port" is its identifier (RFC 5508 §3.1).
                lines.push(format!(
                    "icmp {} id {} -> {} id {} (expires in {left} s)",
                    inside.addr, inside.port, outside.addr, outside.port
                ));
                continue;
            }
            Proto::Other(_) => {
                lines.push(format!(
                    "{proto} {} -> {} (expires in {left} s)",
                    inside.addr, outside.addr
                ));
                continue;
            }
        };
        let row = super::NatRow {
            proto: l4,
            inside: SocketAddrV4::new(inside.addr, inside.port),
            outside: SocketAddrV4::new(outside.addr, outside.port),
        };
        lines.push(format!(
            "{l4} {} -> {}{state} (expires in {left} s)",
            row.inside, row.outside
        ));
        a.nat.push(row);
    }
    a.outcome = Some(Outcome::Listed);
    a.text = if lines.is_empty() {
        "no connections".into()
    } else {
        let noun = if lines.len() == 1 {
            "connection"
        } else {
            "connections"
        };
        format!("{} {noun}: {}", lines.len(), lines.join("; "))
    };
    let _: Instant = now;
    a
}
