//! Building the world: segments, hosts and routers attached to them, and
//! the apps hosts run. Names are unique; each component's randomness is
//! seeded from the simulation seed and its index.

use super::*;

impl Sim {
    pub fn segment(&mut self, name: &str, params: LinkParams) -> SegmentId {
        self.segments.push(Segment::new(name, params));
        SegmentId(self.segments.len() - 1)
    }

    pub(super) fn mac_of(node: usize, iface: usize) -> [u8; 6] {
        [0x02, 0x4e, 0x53, (node >> 8) as u8, node as u8, iface as u8]
    }

    pub(super) fn component_seed(&self, node: usize) -> u64 {
        self.seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(node as u64 + 1)
    }

    pub(super) fn check_name(&self, name: &str) -> Result<(), SimError> {
        if self.names.iter().any(|n| n == name) {
            return Err(SimError::DuplicateName(name.to_string()));
        }
        Ok(())
    }

    pub(super) fn push_node(&mut self, name: &str, node: Node, segs: Vec<usize>) -> NodeId {
        let id = self.nodes.len();
        for (iface, &s) in segs.iter().enumerate() {
            self.segments[s].ports.push(Port { node: id, iface });
        }
        self.nodes.push(node);
        self.names.push(name.to_string());
        self.wake_at.push(None);
        self.attach.push(segs);
        self.schedule_wake(id, self.now);
        NodeId(id)
    }

    pub fn host(&mut self, name: &str, cfg: HostConfig) -> Result<NodeId, SimError> {
        self.check_name(name)?;
        if cfg.segment.0 >= self.segments.len() {
            return Err(SimError::UnknownSegment(cfg.segment.0));
        }
        if cfg.prefix_len > 32 {
            return Err(SimError::BadPrefix {
                node: name.into(),
                len: cfg.prefix_len,
            });
        }
        let id = self.nodes.len();
        let info = HostInfo {
            name: name.to_string(),
            addr: cfg.addr,
            prefix_len: cfg.prefix_len,
            gateway: cfg.gateway,
            dns: cfg.dns,
        };
        let mtu = self.segments[cfg.segment.0].params.mtu;
        let host = Host::new(
            info,
            Self::mac_of(id, 0),
            mtu,
            cfg.tcp,
            self.component_seed(id),
            self.now,
            &[],
        );
        Ok(self.push_node(name, Node::Host(Box::new(host)), vec![cfg.segment.0]))
    }

    pub fn router(&mut self, name: &str, cfg: RouterConfig) -> Result<NodeId, SimError> {
        self.check_name(name)?;
        let id = self.nodes.len();
        let mut ifaces = Vec::new();
        for (k, (iname, seg, addr, len, role)) in cfg.ifaces.iter().enumerate() {
            if seg.0 >= self.segments.len() {
                return Err(SimError::UnknownSegment(seg.0));
            }
            if *len > 32 {
                return Err(SimError::BadPrefix {
                    node: name.into(),
                    len: *len,
                });
            }
            ifaces.push(RouterIface {
                name: iname.clone(),
                segment: seg.0,
                addr: *addr,
                prefix_len: *len,
                role: *role,
                mac: Self::mac_of(id, k),
                mtu: self.segments[seg.0].params.mtu,
            });
        }
        let mut owned = Vec::new();
        let nat = match cfg.nat {
            Some((behaviour, setup)) => {
                let mut nc = NatConfig::new(behaviour);
                nc.seed = self.component_seed(id);
                for (k, i) in ifaces.iter().enumerate() {
                    nc = nc.interface(natsim_nat::IfaceId(k as u16), i.addr, i.prefix_len, i.role);
                }
                setup(&mut nc);
                let mut engine = NatEngine::new(nc).map_err(|error| SimError::Nat {
                    router: name.to_string(),
                    error,
                })?;
                for &(p, port) in &cfg.local_services {
                    engine.add_local_service(p, port);
                }
                // Proxy ARP answers for what the engine says it owns.
                owned.extend(engine.owned_ranges());
                Some(engine)
            }
            None => None,
        };
        let local_mac = Self::mac_of(id, 0xff);
        let mut router = Router::new(name, ifaces, cfg.routes, nat, owned, local_mac);
        router.local_services = cfg.local_services.iter().copied().collect();
        router.mss_clamp = cfg.mss_clamp;
        router.block_icmp = cfg.block_icmp;
        router.answer_ping = cfg.answer_ping;
        router.reject_closed_ports = cfg.reject_closed_ports;
        if cfg.local_stack {
            let first = router
                .ifaces
                .first()
                .map(|i| (i.addr, i.prefix_len))
                .unwrap_or((Ipv4Addr::LOCALHOST, 8));
            let mut extra: Vec<smoltcp::wire::IpCidr> = router
                .ifaces
                .iter()
                .skip(1)
                .map(|i| smoltcp::wire::IpCidr::new(i.addr.into(), i.prefix_len))
                .collect();
            for &(f, l) in &router.owned {
                for a in f..=l.min(f.saturating_add(15)) {
                    extra.push(smoltcp::wire::IpCidr::new(
                        Ipv4Addr::from_bits(a).into(),
                        32,
                    ));
                }
            }
            let gw = router
                .routes
                .iter()
                .find(|(p, _)| p.len == 0)
                .map(|(_, via)| *via);
            let info = HostInfo {
                name: format!("{name} (local stack)"),
                addr: first.0,
                prefix_len: first.1,
                gateway: gw,
                dns: Vec::new(),
            };
            router.local = Some(Host::new(
                info,
                local_mac,
                1500,
                TcpProfile::windows(),
                self.component_seed(id) ^ 0x10ca1,
                self.now,
                &extra,
            ));
        }
        let segs = router.ifaces.iter().map(|i| i.segment).collect();
        Ok(self.push_node(name, Node::Router(Box::new(router)), segs))
    }

    /// Starts an app on a host (or a router's local stack).
    pub fn add_app(&mut self, node: NodeId, app: Box<dyn App>) -> Result<AppId, SimError> {
        let host = match &mut self.nodes[node.0] {
            Node::Host(h) => h.as_mut(),
            Node::Router(r) => match r.local.as_mut() {
                Some(l) => l,
                None => return Err(SimError::NoLocalStack(self.names[node.0].clone())),
            },
        };
        host.apps.push(app);
        let id = AppId(node, host.apps.len() - 1);
        self.schedule_wake(node.0, self.now);
        Ok(id)
    }

    /// Stops an app the way its process exiting would (see
    /// `Host::stop_app`): a step's client gives up when its step ends, so
    /// none of its retries reach the next step. Its results stay readable.
    pub fn stop_app(&mut self, id: AppId) {
        if let Some(h) = self.host_of_mut(id.0) {
            h.stop_app(id.1);
            self.schedule_wake(id.0 .0, self.now);
        }
    }
}
