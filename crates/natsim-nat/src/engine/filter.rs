//! The filter stage: a packet meets the INPUT or FORWARD chain between
//! destination NAT and source NAT (netfilter's hooks), with its
//! connection's state. See [`crate::config::Filter`].

use super::*;
use crate::config::{CtStates, FilterAction, FilterHook, Match, RejectWith};

impl NatEngine {
    /// Whether `m` matches packet `f` (after DNAT, before SNAT) in
    /// conntrack state `state`; `dnat`: its connection was DNATed; `l4`:
    /// what its transport header says (TCP flags, ICMP type).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn match_ok(
        &self,
        m: &Match,
        f: &Flow,
        l4: L4,
        ingress: IfaceId,
        egress: Option<IfaceId>,
        dnat: bool,
        state: CtStates,
    ) -> bool {
        let n = m.not;
        // Each present match must hold, or fail when negated.
        let ok = |present: Option<bool>, negated: bool| present.is_none_or(|h| h != negated);
        let ported = matches!(f.proto, Proto::Tcp | Proto::Udp);
        ok(m.proto.map(|p| p == f.proto), n.proto)
            && ok(m.in_iface.map(|i| i == ingress), n.in_iface)
            && ok(m.out_iface.map(|o| egress == Some(o)), n.out_iface)
            && ok(m.src.map(|p| p.contains(f.src.addr)), n.src)
            && ok(m.dst.map(|p| p.contains(f.dst.addr)), n.dst)
            && m
                .dst_iface_addr
                .is_none_or(|i| self.cfg.iface(i).map(|x| x.addr) == Some(f.dst.addr))
            // A port match needs TCP or UDP even when negated (iptables
            // requires `-p tcp` before `! --dport`).
            && m.dst_ports.is_none_or(|p| ported && p.contains(f.dst.port) != n.dst_ports)
            && m.src_ports.is_none_or(|p| ported && p.contains(f.src.port) != n.src_ports)
            && ok(
                m.dst_local
                    .then(|| self.cfg.interfaces.iter().any(|i| i.addr == f.dst.addr)),
                n.dst_local,
            )
            && m.ct_dnat.is_none_or(|d| d == dnat)
            && m.ct_state.is_none_or(|s| s.contains(state))
            && m.icmp_type.is_none_or(|t| match l4 {
                L4::IcmpQuery {
                    icmp_type, code, ..
                } => t.hits(icmp_type, code) != n.icmp_type,
                _ => false,
            })
            && m.tcp_flags.is_none_or(|t| match l4 {
                L4::Tcp { flags } => t.hits(flags.0) != n.tcp_flags,
                _ => false,
            })
    }

    /// The raw PREROUTING chain for a received packet, before its
    /// connection is looked up: `Some` if it drops it.
    #[inline(never)]
    pub(super) fn raw_filter<T: TraceSink>(
        &mut self,
        frame: &mut Vec<u8>,
        p: &Parsed,
        ingress: IfaceId,
        trace: &mut T,
    ) -> Option<Verdict> {
        self.filter(
            frame,
            p,
            FilterHook::Raw,
            &p.flow,
            ingress,
            None,
            false,
            CtStates::UNTRACKED,
            trace,
        )
    }

    /// Runs the filter chain for `hook`. `None`: accepted; otherwise the
    /// verdict (a drop, or a reject's answer now in `frame`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn filter<T: TraceSink>(
        &mut self,
        frame: &mut Vec<u8>,
        p: &Parsed,
        hook: FilterHook,
        f: &Flow,
        ingress: IfaceId,
        egress: Option<IfaceId>,
        dnat: bool,
        state: CtStates,
        trace: &mut T,
    ) -> Option<Verdict> {
        let chain = self.cfg.filter.chain(hook);
        let mut decided = (chain.policy, None);
        for (k, r) in chain.rules.iter().enumerate() {
            if self.match_ok(&r.matches, f, p.l4_kind, ingress, egress, dnat, state) {
                decided = (r.action, Some(k as u16));
                break;
            }
        }
        let reason = DropReason::FilterDenied {
            hook,
            rule: decided.1,
        };
        match decided.0 {
            FilterAction::Accept => None,
            FilterAction::Drop => Some(self.drop(f.proto, reason, trace)),
            FilterAction::Reject(with) => {
                // nf_send_reset / nf_send_unreach (nf_reject_ipv4.c).
                let answer = match (with, p.l4_kind) {
                    (RejectWith::TcpReset, L4::Tcp { .. }) => {
                        Some(Answer::Rst(reply::ResetBy::Netfilter))
                    }
                    (RejectWith::Icmp(code), L4::Tcp { .. } | L4::Udp | L4::IcmpQuery { .. }) => {
                        // __icmp_send: an error about a packet addressed to
                        // the router comes from the address it targeted;
                        // one about a forwarded packet from the way back.
                        let from = match hook {
                            // (Validation keeps REJECT out of raw.)
                            FilterHook::Input | FilterHook::Raw => f.dst.addr,
                            FilterHook::Forward => {
                                self.cfg.iface(ingress).map_or(p.flow.dst.addr, |i| i.addr)
                            }
                        };
                        // ip_forward has decreased the TTL before the
                        // FORWARD hook, so the quote carries it so.
                        if hook == FilterHook::Forward {
                            frame::decrement_ttl(frame, p.l3);
                        }
                        Some(Answer::Unreachable { from, code })
                    }
                    _ => None,
                };
                let kind = answer.and_then(|a| self.answer(frame, a));
                match kind {
                    Some(kind) => {
                        self.stats.replies += 1;
                        self.stats.count_drop(reason);
                        trace.step(NatStep::Dropped { reason });
                        trace.step(NatStep::Replied { kind });
                        Some(Verdict::Reply { iface: ingress })
                    }
                    None => Some(self.drop(f.proto, reason, trace)),
                }
            }
        }
    }
}
