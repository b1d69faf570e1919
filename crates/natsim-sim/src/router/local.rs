//! The router's own stack: which frames its services get, handing them
//! over, and routing what it sends (through the NAT unless a service on
//! the router answers).

use super::*;

impl Router {
    /// The destination port if this frame is for one of the local stack's
    /// services on a router-owned address.
    pub(super) fn local_service_port(&self, frame: &[u8]) -> Option<String> {
        self.local.as_ref()?;
        let ip = ipv4_of(frame)?;
        if !Self::is_mine(&self.ifaces, &self.owned, ip.dst_addr()) {
            return None;
        }
        let (proto, port) = match ip.next_header() {
            IpProtocol::Tcp => (
                Proto::Tcp,
                TcpPacket::new_checked(ip.payload()).ok()?.dst_port(),
            ),
            IpProtocol::Udp => (
                Proto::Udp,
                UdpPacket::new_checked(ip.payload()).ok()?.dst_port(),
            ),
            _ => return None,
        };
        self.local_services
            .contains(&(proto, port))
            .then(|| format!("{proto}/{port}"))
    }

    pub(super) fn deliver_local(
        &mut self,
        now: Instant,
        ingress: usize,
        mut frame: Vec<u8>,
        out: &mut Outcome,
    ) {
        let node = self.name.clone();
        if let Some(local) = self.local.as_mut() {
            frame[0..6].copy_from_slice(&self.local_mac);
            local.device.rx.push_back(frame);
            out.disposition = Some(Disposition::DeliveredToRouter { node });
            let sent = local.poll(now);
            self.handle_local_output(now, sent, out);
            return;
        }
        out.disposition = Some(Disposition::DeliveredToRouter { node });
        // No services: the router's own stack answers as Linux's does —
        // pings on any of its interface addresses (icmp_echo), a RST for
        // TCP to a closed port (tcp_v4_send_reset), ICMP port unreachable
        // for UDP (__udp4_lib_rcv). Each can be switched off.
        let Some(ip) = ipv4_of(&frame) else {
            return;
        };
        if !self.ifaces.iter().any(|i| i.addr == ip.dst_addr()) {
            return;
        }
        match ip.next_header() {
            IpProtocol::Icmp if self.answer_ping => {
                if let Some(reply) = echo_reply(&frame) {
                    out.originated.push((ingress, reply));
                }
            }
            IpProtocol::Tcp if self.reject_closed_ports => {
                let mac = self.ifaces[ingress].mac;
                if let Some(rst) = reply::tcp_reset(&frame, mac, reply::ResetBy::Stack) {
                    out.step(|| Step::Local {
                        text: "closed port: the router's stack answers RST".into(),
                    });
                    out.originated.push((ingress, rst));
                }
            }
            IpProtocol::Udp if self.reject_closed_ports => {
                out.step(|| Step::Local {
                    text: "closed port: the router's stack answers port unreachable".into(),
                });
                self.icmp_error(
                    now,
                    ingress,
                    &frame,
                    reply::IcmpError::PORT_UNREACHABLE,
                    out,
                );
            }
            _ => {}
        }
    }

    /// Frames the local stack sent: ARP is answered here (every address is
    /// reachable through the router); IPv4 goes through NAT and routing.
    pub fn handle_local_output(&mut self, now: Instant, frames: Vec<Vec<u8>>, out: &mut Outcome) {
        for f in frames {
            if f.len() < 14 {
                continue;
            }
            if u16::from_be_bytes([f[12], f[13]]) == 0x0806 {
                if let Some(reply) = self.proxy_all_arp(&f) {
                    if let Some(local) = self.local.as_mut() {
                        local.device.rx.push_back(reply);
                    }
                }
                continue;
            }
            out.local_out.push(f);
        }
        // ARP answers may unblock the stack at once.
        let again = match self.local.as_mut() {
            Some(l) if !l.device.rx.is_empty() => l.poll(now),
            _ => Vec::new(),
        };
        if !again.is_empty() {
            self.handle_local_output(now, again, out);
        }
    }

    pub(super) fn proxy_all_arp(&self, f: &[u8]) -> Option<Vec<u8>> {
        let pkt = ArpPacket::new_checked(&f[14..]).ok()?;
        let ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } = ArpRepr::parse(&pkt).ok()?
        else {
            return None;
        };
        let me = [
            self.local_mac[0],
            self.local_mac[1],
            self.local_mac[2],
            self.local_mac[3],
            self.local_mac[4],
            0xfe,
        ];
        let repr = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(me),
            source_protocol_addr: target_protocol_addr,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        Some(arp_frame(me, source_hardware_addr.0, &repr))
    }

    /// A frame the router's own stack sent: NAT (unless it answers for a
    /// local service) then routing.
    pub fn local_frame(
        &mut self,
        now: Instant,
        mut frame: Vec<u8>,
        trace: Option<u64>,
        out: &mut Outcome,
    ) {
        let bypass = {
            ipv4_of(&frame)
                .and_then(|ip| match ip.next_header() {
                    IpProtocol::Tcp => TcpPacket::new_checked(ip.payload())
                        .ok()
                        .map(|t| (Proto::Tcp, t.src_port())),
                    IpProtocol::Udp => UdpPacket::new_checked(ip.payload())
                        .ok()
                        .map(|u| (Proto::Udp, u.src_port())),
                    _ => None,
                })
                .is_some_and(|k| self.local_services.contains(&k))
        };
        let verdict = match self.nat.as_mut() {
            Some(nat) if !bypass => {
                let (ifaces, routes, owned) = (&self.ifaces, &self.routes, &self.owned);
                let rf = |d: Ipv4Addr| Self::route_in(ifaces, routes, owned, d);
                run_nat(nat, now, IfaceId::LOCAL, &mut frame, &rf, out)
            }
            _ => match ipv4_of(&frame).map(|ip| self.route(ip.dst_addr())) {
                Some(Route::Forward { iface, next_hop }) => Verdict::Forward { iface, next_hop },
                _ => Verdict::Drop(natsim_nat::DropReason::NoRoute),
            },
        };
        match verdict {
            Verdict::Forward { iface, next_hop } => {
                // Locally generated: the stack set its TTL; no decrement.
                self.forward(
                    now,
                    usize::from(iface.0),
                    usize::from(iface.0),
                    next_hop,
                    frame,
                    false,
                    trace,
                    out,
                );
            }
            v => self.act(now, 0, frame, v, trace, out),
        }
        self.release_held(now, out);
    }
}
