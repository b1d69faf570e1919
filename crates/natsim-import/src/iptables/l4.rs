//! Transport-layer match options: ports, `--icmp-type`, `--syn` and
//! `--tcp-flags` (each checked against the rule's `-p`).

use super::{ports, Parser, SUPPORTED_MATCHES};
use crate::icmp_names::Named;
use crate::ImportError;
use natsim_nat::{Match, PortRange, Proto, TcpFlagsMatch};

/// A `--tcp-flags` list: comma-separated names, `ALL` or `NONE`.
fn flag_bits(v: &str) -> Option<u8> {
    match v {
        "ALL" => return Some(0xff),
        "NONE" => return Some(0),
        _ => {}
    }
    v.split(',').try_fold(0u8, |acc, f| {
        TcpFlagsMatch::NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(f))
            .map(|i| acc | (1 << i))
    })
}

impl Parser<'_> {
    /// `v` as a port or a range `N:M`.
    pub(super) fn port_range(
        &self,
        n: usize,
        col: usize,
        line: &str,
        v: &str,
    ) -> Result<PortRange, ImportError> {
        ports(v).ok_or_else(|| {
            self.err(
                n,
                col,
                line,
                format!("`{v}` is not a port or range N:M"),
                SUPPORTED_MATCHES,
            )
        })
    }

    /// A port match needs `-p tcp` or `-p udp` before it.
    pub(super) fn needs_tcp_or_udp(
        &self,
        m: &Match,
        n: usize,
        col: usize,
        line: &str,
    ) -> Result<(), ImportError> {
        if matches!(m.proto, Some(Proto::Tcp | Proto::Udp)) && !m.not.proto {
            return Ok(());
        }
        Err(self.err(
            n,
            col,
            line,
            "a port match needs -p tcp or -p udp first".into(),
            SUPPORTED_MATCHES,
        ))
    }

    /// `--icmp-type v` at (line, option column, value column).
    pub(super) fn icmp_type(
        &self,
        m: &mut Match,
        (n, col, c): (usize, usize, usize),
        line: &str,
        v: &str,
        neg: bool,
    ) -> Result<(), ImportError> {
        if m.proto != Some(Proto::Icmp) || m.not.proto {
            return Err(self.err(
                n,
                col,
                line,
                "`--icmp-type` needs -p icmp first".into(),
                SUPPORTED_MATCHES,
            ));
        }
        match crate::icmp_names::iptables(v) {
            // `any` holds for every ICMP packet (xt_icmp type 255).
            Some(Named::Any) if !neg => Ok(()),
            Some(Named::Any) => Err(self.err(
                n,
                c,
                line,
                "`! --icmp-type any` can never match".into(),
                "delete the rule",
            )),
            Some(Named::One(ty)) => {
                m.icmp_type = Some(ty);
                m.not.icmp_type = neg;
                Ok(())
            }
            None => Err(self.err(
                n,
                c,
                line,
                format!("`{v}` is not an ICMP type"),
                "a name from `iptables -p icmp -h`, TYPE or TYPE/CODE",
            )),
        }
    }

    /// `--tcp-flags MASK COMP` (or `--syn`) at (line, option column).
    pub(super) fn tcp_flags(
        &self,
        m: &mut Match,
        (n, col): (usize, usize),
        line: &str,
        mask: &str,
        comp: &str,
        neg: bool,
    ) -> Result<(), ImportError> {
        if m.proto != Some(Proto::Tcp) || m.not.proto {
            return Err(self.err(
                n,
                col,
                line,
                "a TCP flags match needs -p tcp first".into(),
                SUPPORTED_MATCHES,
            ));
        }
        let bad = |v: &str| {
            self.err(
                n,
                col,
                line,
                format!("`{v}` is not a list of TCP flags"),
                "FIN,SYN,RST,PSH,ACK,URG,ECE,CWR (comma-separated), ALL or NONE",
            )
        };
        let mask = flag_bits(mask).ok_or_else(|| bad(mask))?;
        let comp = flag_bits(comp).ok_or_else(|| bad(comp))?;
        // Flags outside the mask are not looked at (xt_tcpudp tcp_mt).
        m.tcp_flags = Some(TcpFlagsMatch {
            mask,
            comp: comp & mask,
        });
        m.not.tcp_flags = neg;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::flag_bits;

    #[test]
    fn flag_lists() {
        assert_eq!(flag_bits("SYN,RST,ACK,FIN"), Some(0x17));
        assert_eq!(flag_bits("ALL"), Some(0xff));
        assert_eq!(flag_bits("NONE"), Some(0));
        assert_eq!(flag_bits("syn"), Some(2));
        assert_eq!(flag_bits("SYN,BOGUS"), None);
    }
}
