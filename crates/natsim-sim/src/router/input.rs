//! What Linux's input route refuses before anything else looks at a
//! packet: martian sources.

use super::*;

impl Router {
    /// Why Linux's input route refuses a packet from `src`
    /// (`ip_route_input_slow`, `fib_validate_source` with `accept_local` 0):
    /// a multicast, broadcast, zero-network or loopback source, or one of
    /// the router's own addresses. The last is what ends a routing loop
    /// through a NAT: the masqueraded packet coming back is not NATed again.
    pub(super) fn martian_source(&self, src: Ipv4Addr) -> Option<String> {
        let kind = if src.is_multicast() || src.is_broadcast() {
            "a multicast or broadcast address"
        } else if src.octets()[0] == 0 {
            "in 0.0.0.0/8"
        } else if src.is_loopback() {
            "a loopback address"
        } else if self.ifaces.iter().any(|i| i.addr == src) {
            "one of the router's own addresses"
        } else {
            return None;
        };
        Some(format!("martian source {src}: {kind}"))
    }
}
