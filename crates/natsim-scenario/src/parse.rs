//! Leaf parsers for the scenario format's string values: addresses,
//! prefixes, durations, bandwidths, ports. Each returns a typed value or a
//! located [`Problem`]; nothing past the loader calls them.

use crate::diag::{Ctx, Problem};
use crate::schema::S;
use natsim_nat::Prefix;
use std::net::Ipv4Addr;
use std::time::Duration;

/// The longest duration any field takes.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 86400);

pub fn addr(s: &S<String>, cx: &Ctx<'_>) -> Result<Ipv4Addr, Problem> {
    s.get_ref().trim().parse().map_err(|_| {
        cx.at(
            s.span(),
            format!("`{}` is not an IPv4 address", s.get_ref()),
            Some("write it as a.b.c.d"),
        )
    })
}

/// `a.b.c.d/len`.
pub fn cidr(s: &S<String>, cx: &Ctx<'_>) -> Result<(Ipv4Addr, u8), Problem> {
    let bad = || {
        cx.at(
            s.span(),
            format!("`{}` is not an address with a prefix length", s.get_ref()),
            Some("write it as a.b.c.d/len, e.g. 192.168.1.1/24"),
        )
    };
    let (a, l) = s.get_ref().split_once('/').ok_or_else(bad)?;
    let a: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
    let len: u8 = l.trim().parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(cx.at(
            s.span(),
            format!("prefix length /{len} is larger than 32"),
            None,
        ));
    }
    Ok((a, len))
}

/// A prefix, or a bare address meaning a /32.
pub fn prefix(s: &S<String>, cx: &Ctx<'_>) -> Result<Prefix, Problem> {
    if !s.get_ref().contains('/') {
        return addr(s, cx).map(Prefix::host);
    }
    let (a, l) = cidr(s, cx)?;
    let p = Prefix::new(a, l);
    // `ip route` refuses such a prefix; iptables drops the host bits
    // without a word. Either way the file says something it does not mean.
    if p.network() != a.to_bits() {
        let net = Ipv4Addr::from_bits(p.network());
        return Err(cx.at(
            s.span(),
            format!("`{}` has host bits set", s.get_ref()),
            Some(&format!(
                "the network is {net}/{l}; for the one address write {a}/32"
            )),
        ));
    }
    Ok(p)
}

/// `30s`, `2h`, `1.5ms`; at most 30 days.
pub fn duration_text(s: &str) -> Option<Duration> {
    unlimited_seconds(s)
        .filter(|secs| *secs <= MAX_DURATION.as_secs_f64())
        .map(Duration::from_secs_f64)
}

/// The seconds a duration's text says, with no upper limit.
fn unlimited_seconds(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit.trim() {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    Some(secs)
}

pub fn duration(s: &S<String>, cx: &Ctx<'_>) -> Result<Duration, Problem> {
    duration_text(s.get_ref()).ok_or_else(|| {
        let over = unlimited_seconds(s.get_ref()).is_some();
        cx.at(
            s.span(),
            if over {
                format!("`{}` is over the 30-day limit", s.get_ref())
            } else {
                format!("`{}` is not a duration", s.get_ref())
            },
            Some("e.g. `200ms`, `30s`, `2h`, `2d`; at most 30 days"),
        )
    })
}

/// Why `name` is not a host name a resolver would ask for (RFC 1035
/// §2.3.1 labels, with `_` as service names use it), or None.
pub fn dns_name_problem(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    for label in name.split('.') {
        if label.is_empty() {
            return Some("an empty label");
        }
        if label.len() > 63 {
            return Some("a label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Some("a character other than a letter, digit, `-` or `_`");
        }
    }
    // Top-level domains are never all-numeric (RFC 3696 §2), so a name
    // cannot be mistaken for an address (RFC 1123 §2.1).
    if name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some("a last label of digits only, which no DNS name has (RFC 3696 §2)");
    }
    None
}

/// `100Mbps`, `56kbps`: bits per second.
pub fn bandwidth(s: &S<String>, cx: &Ctx<'_>) -> Result<u64, Problem> {
    let bad = || {
        cx.at(
            s.span(),
            format!("`{}` is not a bandwidth", s.get_ref()),
            Some("e.g. `100Mbps`, `64kbps`"),
        )
    };
    let t = s.get_ref().trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| bad())?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "bps" => 1.0,
        "kbps" => 1e3,
        "mbps" => 1e6,
        "gbps" => 1e9,
        _ => return Err(bad()),
    };
    let v = n * mult;
    if v.is_finite() && (1.0..=1e12).contains(&v) {
        Ok(v as u64)
    } else {
        Err(bad())
    }
}

/// A TCP/UDP port, 1–65535.
pub fn port(p: &S<u32>, cx: &Ctx<'_>) -> Result<u16, Problem> {
    match u16::try_from(*p.get_ref()) {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(cx.at(
            p.span(),
            format!("port {} is not in 1–65535", p.get_ref()),
            None,
        )),
    }
}

/// `ADDR:PORT`.
pub fn socket_text(s: &str) -> Option<std::net::SocketAddrV4> {
    s.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_text("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(duration_text("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(duration_text("31d"), None);
        assert_eq!(duration_text("5 parsecs"), None);
        assert_eq!(duration_text("-1s"), None);
    }
}
