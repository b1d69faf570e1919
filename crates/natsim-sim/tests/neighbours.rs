//! A host keeps sending to a neighbour it has learnt, as an OS does.
//! smoltcp forgets a neighbour 60 s after its last ARP packet and drops
//! the replies its interface builds while the entry is missing; Linux
//! keeps the entry and answers at once. Measured on Linux 6.18 in network
//! namespaces, with the host's base_reachable_time at 1 s and
//! gc_stale_time at 5 s: an echo request 13 s after the host last heard
//! from its gateway was answered 0.1 ms later, with no ARP before it. So
//! an echo request that reaches a host idle for two minutes is answered
//! the first time.

use natsim_nat::Role;
use natsim_sim::probe::Ping;
use natsim_sim::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const INSIDE: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 5);

#[test]
fn a_host_idle_for_two_minutes_answers_the_first_echo_request() {
    let mut sim = Sim::builder().seed(4).build();
    let a = sim.segment("a", LinkParams::default());
    let b = sim.segment("b", LinkParams::default());
    sim.router(
        "r",
        RouterConfig::new()
            .interface("a0", a, Ipv4Addr::new(10, 0, 1, 1), 24, Role::Inside)
            .interface("b0", b, Ipv4Addr::new(10, 0, 2, 1), 24, Role::Outside),
    )
    .unwrap();
    let inside = sim
        .host(
            "inside",
            HostConfig::new(a, INSIDE, 24).gateway(Ipv4Addr::new(10, 0, 1, 1)),
        )
        .unwrap();
    let outside = sim
        .host(
            "outside",
            HostConfig::new(b, OUTSIDE, 24).gateway(Ipv4Addr::new(10, 0, 2, 1)),
        )
        .unwrap();
    // Everyone learns everyone's MAC, then the inside host stays quiet.
    sim.add_app(inside, Box::new(Ping::new(OUTSIDE))).unwrap();
    sim.run_for(Duration::from_secs(120));
    let quiet_until = sim.now();
    sim.add_app(outside, Box::new(Ping::new(INSIDE))).unwrap();
    sim.run_for(Duration::from_secs(6));
    let echo = |kind: u8| {
        sim.capture(a)
            .iter()
            .filter(|(t, f)| {
                *t > quiet_until
                    && f.len() >= 35
                    && f[12..14] == [8, 0]
                    && f[23] == 1
                    && f[34] == kind
            })
            .count()
    };
    // The probe pings until a reply, one request a second: one request,
    // one reply, where a lost first reply would have taken a second one.
    assert_eq!(echo(8), 1, "echo requests reaching the inside host");
    assert_eq!(echo(0), 1, "echo replies from it");
}
