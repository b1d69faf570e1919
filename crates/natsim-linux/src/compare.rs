//! Comparing the kernel's records with natsim's, step by step, and the
//! report verify prints.

use crate::packet::{self, Summary};
use crate::probe::{Record, Rule, StepRecord};
use crate::topology::Topology;
use crate::world::{CtEntry, Seen};

/// The verdict for one probe.
#[derive(Clone, Debug)]
pub struct ProbeResult {
    pub name: String,
    pub rule: String,
    pub kernel: String,
    pub natsim: String,
    pub agree: bool,
    /// Why not, per step.
    pub differences: Vec<String>,
    /// natsim's trace and the kernel's `conntrack -L`, for disagreements.
    pub natsim_trace: String,
    pub conntrack: String,
}

fn class(p: u16) -> u8 {
    // nf_nat_l4proto_unique_tuple: 1-511, 600-1023 (from 512), 1024-65535.
    match p {
        0..=511 => 0,
        512..=1023 => 1,
        _ => 2,
    }
}

fn l4_port_and_sum_offsets(p: &[u8]) -> Vec<usize> {
    let ihl = usize::from(p.first().map_or(5, |b| b & 0x0f)) * 4;
    match p.get(9) {
        Some(&packet::TCP) => vec![ihl, ihl + 1, ihl + 2, ihl + 3, ihl + 16, ihl + 17],
        Some(&packet::UDP) => vec![ihl, ihl + 1, ihl + 2, ihl + 3, ihl + 6, ihl + 7],
        Some(&packet::ICMP) => vec![ihl + 2, ihl + 3, ihl + 4, ihl + 5],
        _ => vec![],
    }
}

/// Whether `ip` is an ICMP error (destination unreachable, time
/// exceeded, parameter problem).
fn is_icmp_error(ip: &[u8]) -> bool {
    let ihl = usize::from(ip.first().map_or(5, |b| b & 0x0f)) * 4;
    ip.get(9) == Some(&packet::ICMP) && ip.get(ihl).is_some_and(|t| matches!(t, 3 | 11 | 12))
}

/// Compares one packet pair under `rule`; `None` when they agree.
fn packets(rule: Rule, k: &[u8], n: &[u8]) -> Option<String> {
    if k == n {
        return None;
    }
    let ks = Summary::parse(k);
    let ns = Summary::parse(n);
    let show = |s: Option<Summary>| s.map_or("unparsable".to_string(), |s| s.to_string());
    if k.len() != n.len() {
        return Some(format!(
            "length {} vs {}: {} / {}",
            k.len(),
            n.len(),
            show(ks),
            show(ns)
        ));
    }
    let mut masked: Vec<usize> = Vec::new();
    // An ICMP error where a probe expected a forwarded packet (a REJECT in
    // the filter) is one the router made: its ID comes from the kernel's
    // hashed ip_idents, so it is compared as generated packets are.
    let rule = match rule {
        Rule::Exact | Rule::Table if is_icmp_error(k) && is_icmp_error(n) => Rule::Generated,
        r => r,
    };
    match rule {
        Rule::Exact | Rule::Table | Rule::TableRandomPort => {}
        Rule::RandomPort { original, clash } => {
            let (Some(a), Some(b)) = (ks, ns) else {
                return Some("unparsable".into());
            };
            // nf_nat's ICMP ids range over 0-65535, without classes.
            let icmp = k.get(9) == Some(&packet::ICMP);
            for (who, s) in [("kernel", a), ("natsim", b)] {
                let ports = [s.sport, s.dport];
                let follows =
                    |p: u16| (!clash || p != original) && (icmp || class(p) == class(original));
                if !ports.iter().any(|&p| follows(p)) {
                    let differs = if clash {
                        format!("≠ {original}, ")
                    } else {
                        String::new()
                    };
                    return Some(format!(
                        "{who}'s port does not follow the rule ({differs}class of {original}): {s}"
                    ));
                }
            }
            masked.extend(l4_port_and_sum_offsets(k));
            masked.extend([10, 11]);
        }
        Rule::Generated => masked.extend([1, 4, 5, 6, 8, 10, 11]),
        Rule::GeneratedRandomPort => {
            masked.extend([1, 4, 5, 6, 8, 10, 11]);
            masked.extend(l4_port_and_sum_offsets(k));
            // An ICMP error: its checksum, and the quoted header's ports
            // and checksum (RFC 792: the quote starts 8 bytes in).
            let ihl = usize::from(k.first().map_or(5, |b| b & 0x0f)) * 4;
            if k.get(9) == Some(&packet::ICMP) && k.get(ihl).is_some_and(|t| *t == 3 || *t == 11) {
                masked.extend([ihl + 2, ihl + 3]);
                if let Some(inner) = k.get(ihl + 8..) {
                    masked.extend(
                        l4_port_and_sum_offsets(inner)
                            .into_iter()
                            .map(|o| o + ihl + 8),
                    );
                    // The quoted IP header's checksum covers no port, but a
                    // quoted ICMP echo's id and checksum are masked above.
                }
            }
        }
    }
    let both_valid = packet::checksums_ok(k) && packet::checksums_ok(n);
    if !masked.is_empty() && !both_valid {
        return Some("a checksum is wrong".into());
    }
    let diff: Vec<usize> = (0..k.len())
        .filter(|i| k[*i] != n[*i] && !masked.contains(i))
        .collect();
    if diff.is_empty() {
        return None;
    }
    let names: Vec<String> = diff
        .iter()
        .take(6)
        .map(|&i| {
            let f = match i {
                1 => "tos",
                2 | 3 => "total length",
                4 | 5 => "ip id",
                6 | 7 => "flags/fragment",
                8 => "ttl",
                9 => "protocol",
                10 | 11 => "ip checksum",
                12..=15 => "src addr",
                16..=19 => "dst addr",
                _ => "l4",
            };
            format!("byte {i} ({f}) {:#04x} vs {:#04x}", k[i], n[i])
        })
        .collect();
    Some(format!("{} / {}: {}", show(ks), show(ns), names.join(", ")))
}

fn tables(rule: Rule, k: &[CtEntry], n: &[CtEntry]) -> Option<String> {
    // Under a random-port rule the mapped port (an ICMP entry's id on
    // both sides of its reply tuple) is each world's own draw.
    let random = rule == Rule::TableRandomPort;
    let key = |e: &CtEntry| {
        let mut reply = e.reply;
        if random && reply.3 != e.orig.1 {
            reply.3 = 0;
            if e.proto == "icmp" {
                reply.1 = 0;
            }
        }
        (e.proto.clone(), e.orig, reply, e.state.clone())
    };
    let mut ks: Vec<&CtEntry> = k.iter().collect();
    let mut ns: Vec<&CtEntry> = n.iter().collect();
    ks.sort_by_key(|e| key(e));
    ns.sort_by_key(|e| key(e));
    if ks.len() != ns.len() {
        return Some(format!("{} entries vs {}", ks.len(), ns.len()));
    }
    for (a, b) in ks.iter().zip(&ns) {
        if key(a) != key(b) || a.timeout.abs_diff(b.timeout) > 2 {
            return Some(format!("kernel `{a}` vs natsim `{b}`"));
        }
    }
    None
}

fn by_host(s: &[Seen]) -> Vec<&Seen> {
    let mut v: Vec<&Seen> = s.iter().collect();
    v.sort_by_key(|x| x.host);
    v
}

/// Summary text of one world's records.
fn describe(t: &Topology, steps: &[StepRecord]) -> String {
    let mut parts = Vec::new();
    for s in steps {
        match &s.record {
            Record::Packets(seen) if seen.is_empty() => parts.push("silence".to_string()),
            Record::Packets(seen) => {
                for x in seen {
                    let sum = Summary::parse(&x.packet).map_or("?".into(), |s| s.to_string());
                    parts.push(format!("{} at {}", sum, t.hosts[x.host].name));
                }
            }
            Record::Table(e) => {
                for x in e {
                    parts.push(x.to_string());
                }
                if e.is_empty() {
                    parts.push("no entries".into());
                }
            }
        }
    }
    parts.join("; ")
}

pub fn compare(
    name: &str,
    t: &Topology,
    kernel: &[StepRecord],
    natsim: &[StepRecord],
) -> ProbeResult {
    let mut differences = Vec::new();
    if kernel.len() != natsim.len() {
        differences.push(format!("{} steps vs {}", kernel.len(), natsim.len()));
    }
    for (k, n) in kernel.iter().zip(natsim) {
        let d = match (&k.record, &n.record) {
            (Record::Packets(a), Record::Packets(b)) => {
                let (a, b) = (by_host(a), by_host(b));
                if a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| x.host != y.host) {
                    Some(format!(
                        "kernel delivered {} packet(s), natsim {}",
                        a.len(),
                        b.len()
                    ))
                } else {
                    a.iter()
                        .zip(&b)
                        .find_map(|(x, y)| packets(k.rule, &x.packet, &y.packet))
                }
            }
            (Record::Table(a), Record::Table(b)) => tables(k.rule, a, b),
            _ => Some("different kinds of record".into()),
        };
        if let Some(d) = d {
            differences.push(format!("{}: {d}", k.label));
        }
    }
    let mut rules: Vec<&str> = kernel.iter().map(|s| s.rule.doc()).collect();
    rules.dedup();
    ProbeResult {
        name: name.to_string(),
        rule: rules.join(", "),
        kernel: describe(t, kernel),
        natsim: describe(t, natsim),
        agree: differences.is_empty(),
        differences,
        natsim_trace: String::new(),
        conntrack: String::new(),
    }
}

/// The table, the disagreements' details, and `N/N probes agree` last.
pub fn render(results: &[ProbeResult], width: usize) -> String {
    let cut = |s: &str, w: usize| -> String {
        if s.chars().count() <= w {
            format!("{s:w$}")
        } else {
            let t: String = s.chars().take(w.saturating_sub(1)).collect();
            format!("{t}…")
        }
    };
    let nw = results
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 44);
    let cw = width.saturating_sub(nw + 14) / 2;
    let mut out = format!(
        "{}  {}  {}  agree\n",
        cut("probe", nw),
        cut("kernel", cw),
        cut("natsim", cw)
    );
    out.push_str(&format!(
        "{}  {}  {}  -----\n",
        "-".repeat(nw),
        "-".repeat(cw),
        "-".repeat(cw)
    ));
    for r in results {
        out.push_str(&format!(
            "{}  {}  {}  {}\n",
            cut(&r.name, nw),
            cut(&r.kernel, cw),
            cut(&r.natsim, cw),
            if r.agree { "yes" } else { "NO" }
        ));
    }
    for r in results.iter().filter(|r| !r.agree) {
        out.push_str(&format!("\n== {} (compared: {}) ==\n", r.name, r.rule));
        for d in &r.differences {
            out.push_str(&format!("  differs: {d}\n"));
        }
        out.push_str(&format!("  kernel: {}\n  natsim: {}\n", r.kernel, r.natsim));
        out.push_str("  natsim trace:\n");
        for l in r.natsim_trace.lines() {
            out.push_str(&format!("    {l}\n"));
        }
        out.push_str("  kernel conntrack -L:\n");
        for l in r.conntrack.lines() {
            out.push_str(&format!("    {l}\n"));
        }
    }
    let ok = results.iter().filter(|r| r.agree).count();
    out.push_str(&format!("{ok}/{} probes agree\n", results.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{udp, Ip};
    use std::net::Ipv4Addr;

    fn datagram(sport: u16) -> Vec<u8> {
        let ip = Ip::new(
            Ipv4Addr::new(203, 0, 113, 1),
            Ipv4Addr::new(198, 51, 100, 7),
            7,
        );
        udp(ip, sport, 80, b"x")
    }

    /// A `random` rule may draw the original port; a clash may not keep it;
    /// neither may leave the port's class.
    #[test]
    fn random_ports_are_judged_by_why_they_are_random() {
        let random = Rule::RandomPort {
            original: 40000,
            clash: false,
        };
        let clash = Rule::RandomPort {
            original: 40000,
            clash: true,
        };
        assert_eq!(packets(random, &datagram(40000), &datagram(51234)), None);
        assert!(packets(clash, &datagram(40000), &datagram(51234)).is_some());
        assert_eq!(packets(clash, &datagram(1100), &datagram(51234)), None);
        assert!(packets(random, &datagram(700), &datagram(51234)).is_some());
    }
}
