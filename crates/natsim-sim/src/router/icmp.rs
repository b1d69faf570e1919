//! The ICMP errors a router sends: time exceeded (RFC 1812 §5.3.1),
//! fragmentation needed (RFC 1191, RFC 1812 §5.2.7.1), unreachables.

use super::*;

impl Router {
    /// Drops an expiring frame with an ICMP time exceeded to its sender
    /// (RFC 1812 §5.3.1, §4.3.2.2).
    pub(super) fn ttl_exceeded(
        &mut self,
        now: Instant,
        ingress: usize,
        frame: &[u8],
        out: &mut Outcome,
    ) {
        self.icmp_error(now, ingress, frame, reply::IcmpError::TTL_EXCEEDED, out);
        out.step(|| Step::Dropped {
            reason: "TTL exceeded".into(),
        });
        out.disposition = Some(Disposition::TtlExceeded {
            node: self.name.clone(),
        });
    }
    /// A DF packet larger than the egress MTU is dropped with ICMP
    /// "fragmentation needed" carrying the next-hop MTU (RFC 1191 §4,
    /// RFC 1812 §5.2.7.1), quoting `arrived` (the frame before NAT) when
    /// given. Returns true if it was.
    pub(super) fn frag_needed(
        &mut self,
        now: Instant,
        ingress: usize,
        egress: usize,
        frame: &[u8],
        arrived: Option<&[u8]>,
        out: &mut Outcome,
    ) -> bool {
        let Some(ip) = ipv4_of(frame) else {
            return false;
        };
        let mtu = self.ifaces[egress].mtu;
        if usize::from(ip.total_len()) <= mtu || !ip.dont_frag() {
            return false;
        }
        let error = reply::IcmpError::frag_needed(mtu as u16);
        self.icmp_error(now, ingress, arrived.unwrap_or(frame), error, out);
        let reason = format!(
            "fragmentation needed: {} bytes with DF over {}'s MTU {mtu}",
            ip.total_len(),
            self.ifaces[egress].name
        );
        self.drop_frame(reason, out);
        true
    }
    /// An ICMP error about `frame` out of `ingress`, built as the kernel's
    /// `__icmp_send` does ([`reply::icmp_error`]), with the router's next
    /// IP ID, unless the rate limits refuse it.
    pub(super) fn icmp_error(
        &mut self,
        now: Instant,
        ingress: usize,
        frame: &[u8],
        error: reply::IcmpError,
        out: &mut Outcome,
    ) {
        let i = &self.ifaces[ingress];
        let Some(buf) = reply::icmp_error(frame, i.addr, i.mac, self.ip_id, error) else {
            return;
        };
        if let Some(why) = self.icmp_refused(now, &buf) {
            out.step(|| Step::Local {
                text: format!("no ICMP error sent: {why}"),
            });
            return;
        }
        self.ip_id = self.ip_id.wrapping_add(1);
        out.originated.push((ingress, buf));
    }

    /// Whether Linux's ICMP rate limits refuse the answer `buf` (an ICMP
    /// error the router or its NAT built; anything else passes), spending
    /// its share of them if not.
    pub(super) fn icmp_refused(&mut self, now: Instant, buf: &[u8]) -> Option<reply::Limited> {
        let (to, error) = reply::icmp_error_in(buf)?;
        self.icmp_limit.allow(now, to, error).err()
    }
}
