//! The ICMP errors a router sends: time exceeded (RFC 1812 §5.3.1),
//! fragmentation needed (RFC 1191, RFC 1812 §5.2.7.1), unreachables.

use super::*;

/// What [`Router::send_icmp_error`] builds.
#[derive(Clone, Copy)]
enum Message {
    Error(reply::IcmpError),
    /// A redirect for host, to this gateway.
    Redirect(Ipv4Addr),
}

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
    /// An ICMP error about `frame`, a packet as its sender sent it (the
    /// router's checks before NAT), built as the kernel's `__icmp_send`
    /// does ([`reply::icmp_error`]), with the router's next IP ID, unless
    /// the rate limits refuse it. Like `__icmp_send` it is routed: it
    /// leaves by the route back to the sender, from that interface's
    /// address (`icmp_errors_use_inbound_ifaddr` 0), which is not always
    /// the interface the packet came in on.
    pub(super) fn icmp_error(
        &mut self,
        now: Instant,
        ingress: usize,
        frame: &[u8],
        error: reply::IcmpError,
        out: &mut Outcome,
    ) {
        self.send_icmp_error(now, ingress, frame, Message::Error(error), false, out);
    }

    /// A transit packet going back out of the interface it came in on, to
    /// a next hop on the sender's own link: an ICMP redirect tells the
    /// sender to use `next_hop` directly (RFC 1812 §5.2.7.2; Linux's
    /// `__mkroute_input` marks it, `ip_forward` sends it after the TTL
    /// decrement, quoting the packet so). Linux's NAT drops a redirect
    /// about a NATed connection (`nf_nat_icmp_reply_translation`), but the
    /// schedule in [`reply::IcmpRateLimit::redirect`] still advances.
    /// `frame` is the packet about to leave, after NAT.
    pub(super) fn redirect(
        &mut self,
        now: Instant,
        ingress: usize,
        next_hop: Ipv4Addr,
        frame: &[u8],
        out: &mut Outcome,
    ) {
        // Who sent it and to whom, before NAT: the kernel redirects in
        // ip_forward, after DNAT and before SNAT.
        let (src, dst, natted) = match self.nat.as_ref().and_then(|n| n.arrival_of(frame)) {
            Some((f, translated)) => (f.src.addr, f.dst.addr, translated),
            None => match ipv4_of(frame) {
                Some(ip) => (ip.src_addr(), ip.dst_addr(), false),
                None => return,
            },
        };
        let link = &self.ifaces[ingress];
        // `inet_addr_onlink`: the sender is a neighbour on that link.
        if !Prefix::new(link.addr, link.prefix_len).contains(src) {
            return;
        }
        if !self.icmp_limit.redirect(now, src) {
            return;
        }
        if natted {
            out.step(|| Step::Local {
                text: format!(
                    "no ICMP redirect to {src}: its connection is NATed (Linux's NAT drops redirects about NATed connections)"
                ),
            });
            return;
        }
        out.step(|| Step::Local {
            text: format!(
                "ICMP redirect to {src}: use {next_hop} for {dst} (the packet goes back out of {}, RFC 1812 §5.2.7.2)",
                link.name
            ),
        });
        self.send_icmp_error(now, ingress, frame, Message::Redirect(next_hop), false, out);
    }

    /// An ICMP error about `frame` after NAT rewrote it (a next hop that
    /// never answered ARP, no route after DNAT). Linux attaches the
    /// offending packet's connection to the error (`nf_ct_attach`), so NAT
    /// translates it back: the sender sees its packet quoted as it sent
    /// it, and the error reaches it through the NAT.
    pub(super) fn icmp_error_after_nat(
        &mut self,
        now: Instant,
        ingress: usize,
        frame: &[u8],
        error: reply::IcmpError,
        out: &mut Outcome,
    ) {
        let translate = self.nat.is_some();
        self.send_icmp_error(now, ingress, frame, Message::Error(error), translate, out);
    }

    fn send_icmp_error(
        &mut self,
        now: Instant,
        ingress: usize,
        frame: &[u8],
        message: Message,
        translate: bool,
        out: &mut Outcome,
    ) {
        let Some(to) = ipv4_of(frame).map(|ip| ip.src_addr()) else {
            return;
        };
        // The source: the address of the interface the route to the
        // sender leaves by; the sender's own address if that is ours (a
        // masqueraded packet, whose error NAT then sends on inside).
        let from = match self.route(to) {
            Route::Forward { iface, .. } => self.ifaces[usize::from(iface.0)].addr,
            Route::Local => to,
            Route::Unreachable => return,
        };
        let i = &self.ifaces[ingress];
        let built = match message {
            Message::Error(e) => reply::icmp_error(frame, from, i.mac, self.ip_id, e),
            Message::Redirect(gw) => reply::icmp_redirect(frame, from, i.mac, self.ip_id, gw),
        };
        let Some(mut buf) = built else {
            return;
        };
        if let Some(why) = self.icmp_refused(now, &buf) {
            out.step(|| Step::Local {
                text: format!("no ICMP error sent: {why}"),
            });
            return;
        }
        self.ip_id = self.ip_id.wrapping_add(1);
        let verdict = match self.nat.as_mut() {
            Some(nat) if translate => {
                let (ifaces, routes, owned) = (&self.ifaces, &self.routes, &self.owned);
                let rf = |d: Ipv4Addr| Self::route_in(ifaces, routes, owned, d);
                run_nat(nat, now, IfaceId::LOCAL, &mut buf, &rf, out)
            }
            _ => match ipv4_of(&buf).map(|ip| self.route(ip.dst_addr())) {
                Some(Route::Forward { iface, next_hop }) => Verdict::Forward { iface, next_hop },
                _ => return,
            },
        };
        let Verdict::Forward { iface, next_hop } = verdict else {
            return;
        };
        let egress = usize::from(iface.0);
        // Straight back to the sender's link address when it is the next
        // hop on the way it came; else to the next hop's, by ARP.
        let sender_mac = mac_of(frame, 6);
        let back = egress == ingress && sender_mac[0] & 1 == 0 && !self.is_own_mac(sender_mac);
        buf[6..12].copy_from_slice(&self.ifaces[egress].mac);
        match self.arp.get(&next_hop) {
            Some(m) => {
                buf[0..6].copy_from_slice(m);
                out.originated.push((egress, buf));
            }
            None if back && ipv4_of(&buf).is_some_and(|ip| ip.dst_addr() == next_hop) => {
                buf[0..6].copy_from_slice(&sender_mac);
                out.originated.push((egress, buf));
            }
            None => self.send_to(now, egress, next_hop, buf, None, out),
        }
    }

    fn is_own_mac(&self, mac: [u8; 6]) -> bool {
        self.ifaces.iter().any(|i| i.mac == mac)
    }

    /// Whether Linux's ICMP rate limits refuse the answer `buf` (an ICMP
    /// error the router or its NAT built; anything else passes), spending
    /// its share of them if not.
    pub(super) fn icmp_refused(&mut self, now: Instant, buf: &[u8]) -> Option<reply::Limited> {
        let (to, error) = reply::icmp_error_in(buf)?;
        self.icmp_limit.allow(now, to, error).err()
    }

    /// A host-unreachable error for a frame whose next hop never answered.
    pub fn unreachable(
        &mut self,
        now: Instant,
        frame: &[u8],
        iface_hint: usize,
        out: &mut Outcome,
    ) {
        // Send it back out of the interface the source is reachable on.
        let ingress = ipv4_of(frame)
            .and_then(|ip| match self.route(ip.src_addr()) {
                Route::Forward { iface, .. } => Some(usize::from(iface.0)),
                _ => None,
            })
            .unwrap_or(iface_hint);
        // Host unreachable (RFC 792 code 1).
        let error = reply::IcmpError::unreachable(1);
        self.icmp_error_after_nat(now, ingress, frame, error, out);
    }
}
