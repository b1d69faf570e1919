//! The ICMP errors a router sends: time exceeded (RFC 1812 §5.3.1),
//! fragmentation needed (RFC 1191, RFC 1812 §5.2.7.1), unreachables.

use super::*;
use natsim_nat::wire::reply;

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
        self.icmp_error(now, ingress, frame, Icmpv4Message::TimeExceeded, 0, out);
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
        self.icmp_error_full(now, ingress, arrived.unwrap_or(frame), error, out);
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
    /// IP ID.
    pub(super) fn icmp_error_full(
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
        // It goes to the offending packet's source, which the builder
        // found to be a valid IPv4 header.
        let to = ipv4_of(frame).map_or(Ipv4Addr::UNSPECIFIED, |ip| ip.src_addr());
        if let Err(why) = self.icmp_limit.allow(now, to, error) {
            out.step(|| Step::Local {
                text: format!("no ICMP error sent: {why}"),
            });
            return;
        }
        self.ip_id = self.ip_id.wrapping_add(1);
        out.originated.push((ingress, buf));
    }
    pub(super) fn icmp_error(
        &mut self,
        now: Instant,
        ingress: usize,
        frame: &[u8],
        msg: Icmpv4Message,
        code: u8,
        out: &mut Outcome,
    ) {
        let t = match msg {
            Icmpv4Message::TimeExceeded => 11,
            _ => 3,
        };
        let error = reply::IcmpError {
            icmp_type: t,
            code,
            mtu: 0,
        };
        self.icmp_error_full(now, ingress, frame, error, out);
    }
}
