//! A router's effective NAT configuration as JSON for `natsim show`:
//! rules in iptables-like words, behaviour as the scenario format's words,
//! timeouts in seconds, so `jq` can query it.

use natsim_nat::{Chain, FilterChain, NatConfig};
use serde_json::{json, Map, Value};

/// `AddressAndPortDependent` → `address-and-port-dependent`.
fn kebab(debug: impl std::fmt::Debug) -> String {
    let name = format!("{debug:?}");
    let mut out = String::new();
    for (k, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if k > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn secs(d: natsim_nat::Duration) -> Value {
    json!(d.as_secs_f64())
}

pub fn nat_json(c: &NatConfig) -> Value {
    let name = |id: natsim_nat::IfaceId| format!("if{}", id.0);
    let interfaces: Vec<Value> = c
        .interfaces
        .iter()
        .map(|i| {
            json!({
                "id": name(i.id),
                "address": format!("{}/{}", i.addr, i.prefix_len),
                "role": kebab(i.role),
            })
        })
        .collect();
    let rules: Vec<Value> = c
        .rules
        .rules
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "chain": match r.chain {
                    Chain::Prerouting => "prerouting",
                    Chain::Postrouting => "postrouting",
                },
                "match": natsim_import::render::describe_match_with(&name, &r.matches),
                "action": natsim_import::render::action(&r.action),
            })
        })
        .collect();
    let b = &c.behaviour;
    let per_proto = |f: &dyn Fn(&natsim_nat::ProtoBehaviour) -> String| json!({ "tcp": f(&b.tcp), "udp": f(&b.udp), "icmp": f(&b.icmp) });
    let t = &b.timeouts;
    let chain = |ch: &FilterChain| {
        json!({
            "policy": natsim_import::render::verdict(ch.policy),
            "rules": ch.rules.iter().map(|r| json!({
                "name": r.name,
                "match": natsim_import::render::describe_match_with(&name, &r.matches),
                "action": natsim_import::render::verdict(r.action),
            })).collect::<Vec<_>>(),
        })
    };
    let algs: Map<String, Value> = c
        .algs
        .ports
        .iter()
        .map(|(p, k)| (p.to_string(), json!(kebab(k))))
        .collect();
    json!({
        "profile": b.name,
        "interfaces": interfaces,
        "rules": rules,
        "mapping": per_proto(&|p| kebab(p.mapping)),
        "filtering": per_proto(&|p| kebab(p.filtering)),
        "ports": {
            "strategy": kebab(b.ports.strategy),
            "preserve_parity": b.ports.preserve_parity,
            "preserve_range_class": b.ports.preserve_range_class,
            "classes": kebab(b.ports.classes),
            "allow_overloading": b.ports.allow_overloading,
            "max_attempts": b.ports.max_attempts,
        },
        "unsolicited": kebab(b.unsolicited),
        "filter_inbound": b.filter_inbound,
        "hairpin": kebab(b.hairpin),
        "udp_refresh": kebab(b.udp_refresh),
        "fragments": kebab(b.fragments),
        "timeouts_s": {
            "tcp_syn_sent": secs(t.tcp_syn_sent),
            "tcp_syn_recv": secs(t.tcp_syn_recv),
            "tcp_established": secs(t.tcp_established),
            "tcp_fin_wait": secs(t.tcp_fin_wait),
            "tcp_close_wait": secs(t.tcp_close_wait),
            "tcp_last_ack": secs(t.tcp_last_ack),
            "tcp_time_wait": secs(t.tcp_time_wait),
            "tcp_close": secs(t.tcp_close),
            "udp_unreplied": secs(t.udp_unreplied),
            "udp_replied": secs(t.udp_replied),
            "udp_stream_after": secs(t.udp_stream_after),
            "icmp": secs(t.icmp),
            "generic": secs(t.generic),
        },
        "max_connections": c.capacity,
        "alg_ports": algs,
        "filter": {
            "raw": chain(&c.filter.raw),
            "input": chain(&c.filter.input),
            "forward": chain(&c.filter.forward)
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_become_the_formats_words() {
        assert_eq!(
            kebab(natsim_nat::MappingBehaviour::AddressAndPortDependent),
            "address-and-port-dependent"
        );
    }
}
