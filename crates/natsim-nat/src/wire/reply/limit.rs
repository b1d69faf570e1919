//! Linux's ICMP error rate limits, as `__icmp_send` applies them to the
//! errors a router sends (its stack's port unreachables, a `reject`
//! rule's, TTL expiry, no route), with the default sysctls:
//!
//! * `icmp_ratemask` (0x1818): only destination unreachable, source
//!   quench, time exceeded and parameter problem are limited, and never
//!   "fragmentation needed", which PMTU discovery depends on
//!   (`icmpv4_mask_allow`);
//! * `icmp_msgs_per_sec` 1000 with `icmp_msgs_burst` 50, for the whole
//!   router (`icmp_global_allow`, spent by `icmp_global_consume`);
//! * `icmp_ratelimit` 1000 ms per destination, with a burst of six
//!   (`inet_peer_xrlim_allow`, XRLIM_BURST_FACTOR), asked between the
//!   two, so an error a destination's bucket refuses spends no global
//!   credit.
//!
//! Checked in network namespaces: twenty UDP datagrams to closed ports
//! in a burst draw six port unreachables; 1.5 s later one more is
//! allowed; another source meanwhile gets its own six.
//!
//! Redirects (`ip_rt_send_redirect`) have their own schedule per source,
//! on the same per-destination record: the first always goes, the n-th
//! only 20 ms << n after the one before, none after nine until 20.48 s
//! pass without a redirect being due (`ip_rt_redirect_number`, `_load`,
//! `_silence`). Coming back after that silence also empties the
//! destination's error bucket, so an error right after a fresh redirect
//! is refused. Checked in namespaces: a host that ignores redirects,
//! pinging every 0.5 s through a router that sends it back out, got
//! redirects at 0, 0.5, 1, 1.5, 2, 3, 4.5, 7.5 and 13 s, then none; a
//! port unreachable just after a hairpin's redirect was not sent
//! (IcmpOutRateLimitHost).
//!
//! The kernel spends 0–2 global credits per error at random (against
//! side channels); here each spends one, the kernel's average, so runs
//! stay deterministic.
//!
//! The engine does not apply these limits itself: in Linux they belong to
//! the stack, so the simulator's router owns one `IcmpRateLimit` for its
//! own errors and its NAT's answers alike. A program that drives the
//! engine directly can do the same with [`IcmpRateLimit::allow`] on each
//! `Verdict::Reply` that [`super::icmp_error_in`] recognises.

use super::IcmpError;
use crate::time::Instant;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// `icmp_ratelimit`, in microseconds.
const PER_PEER_US: u64 = 1_000_000;
/// `ip_rt_redirect_number`, `ip_rt_redirect_load` (HZ / 50) and
/// `ip_rt_redirect_silence` ((HZ / 50) << 10).
const REDIRECTS: u8 = 9;
const REDIRECT_LOAD_US: u64 = 20_000;
const REDIRECT_SILENCE_US: u64 = REDIRECT_LOAD_US << 10;
/// XRLIM_BURST_FACTOR: tokens a destination can save up.
const BURST: u64 = 6;
const GLOBAL_PER_SEC: u64 = 1000;
const GLOBAL_BURST: u64 = 50;
/// `icmp_global_allow` adds credit only after this long (HZ / 50).
const GLOBAL_STEP_US: u64 = 20_000;
/// Destinations remembered before those with a full bucket are forgotten
/// (an absent destination and a full bucket behave alike, so forgetting
/// them changes nothing).
const FORGET_AFTER: usize = 4096;

/// What the kernel's `inet_peer` keeps for one destination.
#[derive(Clone, Copy, Debug)]
struct Peer {
    /// Saved tokens, in µs of `icmp_ratelimit`.
    tokens: u64,
    /// The last error asked for, or redirect sent or refused.
    last: Instant,
    /// Redirects sent since the last silence.
    redirects: u8,
}

/// The router-wide and per-destination buckets.
#[derive(Clone, Debug)]
pub struct IcmpRateLimit {
    peers: BTreeMap<Ipv4Addr, Peer>,
    credit: u64,
    stamp: Option<Instant>,
    /// The map's size at which destinations with full buckets are swept.
    forget_at: usize,
}

impl Default for IcmpRateLimit {
    fn default() -> Self {
        IcmpRateLimit {
            peers: BTreeMap::new(),
            credit: GLOBAL_BURST,
            stamp: None,
            forget_at: FORGET_AFTER,
        }
    }
}

/// Why an ICMP error was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// `icmp_msgs_per_sec` / `icmp_msgs_burst`, for the whole router.
    Global,
    /// `icmp_ratelimit` for this destination.
    Destination,
}

impl core::fmt::Display for Limited {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Limited::Global => "ICMP rate limit: over 1000 errors per second (icmp_msgs_per_sec)",
            Limited::Destination => {
                "ICMP rate limit: this destination had its 6 errors (icmp_ratelimit 1000 ms)"
            }
        })
    }
}

/// Whether `icmp_ratemask` limits this error at all.
fn limited_type(e: IcmpError) -> bool {
    let frag_needed = e.icmp_type == 3 && e.code == 4;
    matches!(e.icmp_type, 3 | 4 | 11 | 12) && !frag_needed
}

impl IcmpRateLimit {
    /// Spends what sending `error` to `dst` at `now` costs, or says which
    /// limit refuses it (and then spends nothing more).
    pub fn allow(&mut self, now: Instant, dst: Ipv4Addr, error: IcmpError) -> Result<(), Limited> {
        if !limited_type(error) {
            return Ok(());
        }
        // Current kernels ask the destination's bucket before the
        // global credit is spent, so a refused destination costs others
        // nothing ("icmp: change the order of rate limits").
        self.refill_global(now);
        if self.credit == 0 {
            return Err(Limited::Global);
        }
        let cap = BURST * PER_PEER_US;
        let p = self.peers.entry(dst).or_insert(Peer {
            tokens: cap,
            last: now,
            redirects: 0,
        });
        let elapsed = now.total_micros().saturating_sub(p.last.total_micros());
        let tokens = p.tokens.saturating_add(elapsed).min(cap);
        let (tokens, verdict) = if tokens >= PER_PEER_US {
            (tokens - PER_PEER_US, Ok(()))
        } else {
            (tokens, Err(Limited::Destination))
        };
        (p.tokens, p.last) = (tokens, now);
        if verdict.is_ok() {
            self.credit -= 1;
        }
        self.forget(now);
        verdict
    }

    /// Whether a redirect to `dst` goes at `now` (`ip_rt_send_redirect`):
    /// its schedule, and the emptied error bucket after a silence.
    pub fn redirect(&mut self, now: Instant, dst: Ipv4Addr) -> bool {
        // A destination the kernel has not seen counts as silent for
        // a minute (`inet_getpeer` sets `rate_last` 60 s back).
        let fresh = !self.peers.contains_key(&dst);
        let p = self.peers.entry(dst).or_insert(Peer {
            tokens: BURST * PER_PEER_US,
            last: now,
            redirects: 0,
        });
        let since = now.total_micros().saturating_sub(p.last.total_micros());
        if fresh || since > REDIRECT_SILENCE_US {
            p.tokens = 0;
            p.redirects = 0;
        }
        let send = if p.redirects >= REDIRECTS {
            p.last = now;
            false
        } else if p.redirects == 0 || since > REDIRECT_LOAD_US << p.redirects {
            p.last = now;
            p.redirects += 1;
            true
        } else {
            false
        };
        self.forget(now);
        send
    }

    /// Sweeps destinations that behave as absent ones do: a full bucket
    /// and no redirect schedule running.
    fn forget(&mut self, now: Instant) {
        let cap = BURST * PER_PEER_US;
        if self.peers.len() > self.forget_at {
            self.peers.retain(|_, p| {
                let idle = now.total_micros().saturating_sub(p.last.total_micros());
                p.tokens.saturating_add(idle) < cap
                    || (p.redirects > 0 && idle <= REDIRECT_SILENCE_US)
            });
            // If most are still saving up, sweep again only once the map
            // has doubled: amortised O(log n) per error, not O(n).
            self.forget_at = (2 * self.peers.len()).max(FORGET_AFTER);
        }
    }

    fn refill_global(&mut self, now: Instant) {
        let Some(stamp) = self.stamp else {
            self.stamp = Some(now);
            return;
        };
        let delta = now
            .total_micros()
            .saturating_sub(stamp.total_micros())
            .min(1_000_000);
        if delta >= GLOBAL_STEP_US {
            let incr = GLOBAL_PER_SEC * delta / 1_000_000;
            if incr > 0 {
                self.stamp = Some(now);
                self.credit = (self.credit + incr).min(GLOBAL_BURST);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 3);
    const UNREACH: IcmpError = IcmpError::PORT_UNREACHABLE;

    fn at_ms(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    /// The kernel run in the module notes, replayed.
    #[test]
    fn six_at_once_then_one_a_second_per_destination() {
        let mut l = IcmpRateLimit::default();
        let sent = (0..20)
            .filter(|_| l.allow(at_ms(1000), A, UNREACH).is_ok())
            .count();
        assert_eq!(sent, 6);
        assert_eq!(l.allow(at_ms(1001), A, UNREACH), Err(Limited::Destination));
        assert_eq!(l.allow(at_ms(2500), A, UNREACH), Ok(()));
        assert_eq!(l.allow(at_ms(2500), A, UNREACH), Err(Limited::Destination));
        let other = (0..5)
            .filter(|_| l.allow(at_ms(2500), B, UNREACH).is_ok())
            .count();
        assert_eq!(other, 5);
    }

    /// The namespace run in the module notes: a packet every 0.5 s that
    /// the router sends back out, from a host that ignores redirects.
    #[test]
    fn redirects_follow_the_kernels_schedule_then_stop() {
        let mut l = IcmpRateLimit::default();
        let sent: Vec<u64> = (0..40u64)
            .map(|k| k * 500)
            .filter(|&ms| l.redirect(at_ms(10_000 + ms), A))
            .collect();
        assert_eq!(sent, [0, 500, 1000, 1500, 2000, 3000, 4500, 7500, 13_000]);
        // Still due every 0.5 s, so never silent: none after the ninth.
        assert!(!l.redirect(at_ms(10_000 + 20_000), A));
        // 20.48 s without one: the schedule starts again.
        assert!(!l.redirect(at_ms(10_000 + 20_000 + 20_480), A));
        assert!(l.redirect(at_ms(10_000 + 20_000 + 20_480 + 20_481), A));
    }

    /// A fresh redirect empties the destination's error bucket (the
    /// hairpin's redirect NAT then dropped, in the module notes).
    #[test]
    fn an_error_just_after_a_fresh_redirect_is_refused() {
        let mut l = IcmpRateLimit::default();
        assert!(l.redirect(at_ms(5000), A));
        assert_eq!(l.allow(at_ms(5500), A, UNREACH), Err(Limited::Destination));
        assert_eq!(l.allow(at_ms(6600), A, UNREACH), Ok(()));
        assert_eq!(
            l.allow(at_ms(5500), B, UNREACH),
            Ok(()),
            "another host's bucket"
        );
    }

    #[test]
    fn fragmentation_needed_and_unlimited_types_always_go() {
        let mut l = IcmpRateLimit::default();
        for _ in 0..100 {
            assert_eq!(l.allow(at_ms(5), A, IcmpError::frag_needed(1400)), Ok(()));
            let redirect = IcmpError {
                icmp_type: 5,
                code: 1,
                mtu: 0,
            };
            assert_eq!(l.allow(at_ms(5), A, redirect), Ok(()));
        }
    }

    #[test]
    fn the_router_sends_at_most_fifty_at_once_and_a_thousand_a_second() {
        let mut l = IcmpRateLimit::default();
        let to = |k: u32| Ipv4Addr::from_bits(0x0a00_0000 + k);
        let burst = (0..200)
            .filter(|&k| l.allow(at_ms(0), to(k), UNREACH).is_ok())
            .count();
        assert_eq!(burst, 50);
        assert_eq!(l.allow(at_ms(0), to(999), UNREACH), Err(Limited::Global));
        // Credit comes back in steps of 20 ms: 20 errors' worth.
        assert_eq!(l.allow(at_ms(10), to(1000), UNREACH), Err(Limited::Global));
        let refilled = (0..100)
            .filter(|&k| l.allow(at_ms(20), to(2000 + k), UNREACH).is_ok())
            .count();
        assert_eq!(refilled, 20);
    }

    #[test]
    fn a_refused_destination_spends_no_global_credit() {
        let mut l = IcmpRateLimit::default();
        for _ in 0..6 {
            assert_eq!(l.allow(at_ms(0), A, UNREACH), Ok(()));
        }
        for _ in 0..100 {
            assert_eq!(l.allow(at_ms(0), A, UNREACH), Err(Limited::Destination));
        }
        let others = (0..100u32)
            .filter(|&k| {
                l.allow(at_ms(0), Ipv4Addr::from_bits(0x0c00_0000 + k), UNREACH)
                    .is_ok()
            })
            .count();
        assert_eq!(others, 50 - 6);
    }

    #[test]
    fn forgetting_full_buckets_changes_nothing() {
        let mut l = IcmpRateLimit::default();
        for k in 0..(FORGET_AFTER as u32 + 10) {
            // A minute apart per thousand: the global bucket never runs dry.
            let now = at_ms(u64::from(k) * 60);
            let _ = l.allow(now, Ipv4Addr::from_bits(0x0b00_0000 + k), UNREACH);
        }
        assert!(l.peers.len() <= FORGET_AFTER);
        let now = at_ms((FORGET_AFTER as u64 + 20) * 60);
        let sent = (0..10)
            .filter(|_| {
                l.allow(now, Ipv4Addr::from_bits(0x0b00_0000), UNREACH)
                    .is_ok()
            })
            .count();
        assert_eq!(sent, 6);
    }
}
