//! Fault rules in turmoil's style: each rule looks at a frame in flight and
//! answers `Pass`, `Deliver(delay)`, `Hold` or `Drop`; the first non-`Pass`
//! answer wins (rules are asked in the order they were added). Partition,
//! delay, hold and drop-by-predicate are thin constructors over
//! [`FaultRule::new`], each with a one-way variant.
//!
//! Rules see every frame on a segment, ARP included: a partition also stops
//! address resolution, as pulling a cable would. A held frame waits in the
//! simulator until [`crate::Sim::release`] (or removing the rule) delivers
//! it, in the order it was held.

use std::time::Duration;

/// A rule's answer for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultVerdict {
    Pass,
    /// Deliver after this extra delay.
    Deliver(Duration),
    /// Keep the frame until the rule is released or removed.
    Hold,
    Drop,
}

/// A frame as a fault rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct InFlight<'a> {
    pub segment: &'a str,
    /// Sending and receiving node names.
    pub from: &'a str,
    pub to: &'a str,
    pub frame: &'a [u8],
}

type Pred = dyn Fn(&InFlight<'_>) -> FaultVerdict;

/// A named rule; remove it with [`crate::Sim::remove_fault`].
pub struct FaultRule {
    pub name: String,
    pub(crate) rule: Box<Pred>,
}

impl std::fmt::Debug for FaultRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultRule")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FaultRule {
    pub fn new(name: &str, rule: impl Fn(&InFlight<'_>) -> FaultVerdict + 'static) -> FaultRule {
        FaultRule {
            name: name.to_string(),
            rule: Box::new(rule),
        }
    }
    /// A rule answering `v` for frames from `a` to `b` (and from `b` to `a`
    /// unless `one_way`).
    fn between(name: String, a: &str, b: &str, one_way: bool, v: FaultVerdict) -> FaultRule {
        let (a, b) = (a.to_string(), b.to_string());
        Self::new(&name, move |f| {
            if (f.from == a && f.to == b) || (!one_way && f.from == b && f.to == a) {
                v
            } else {
                FaultVerdict::Pass
            }
        })
    }
    /// Drops everything between `a` and `b`, both ways.
    pub fn partition(a: &str, b: &str) -> FaultRule {
        Self::between(
            format!("partition {a} | {b}"),
            a,
            b,
            false,
            FaultVerdict::Drop,
        )
    }
    /// Drops frames from `a` to `b` only.
    pub fn partition_one_way(a: &str, b: &str) -> FaultRule {
        Self::between(
            format!("partition {a} → {b}"),
            a,
            b,
            true,
            FaultVerdict::Drop,
        )
    }
    /// Delays frames between `a` and `b` by `d`, both ways.
    pub fn delay(a: &str, b: &str, d: Duration) -> FaultRule {
        Self::between(
            format!("delay {a} | {b}"),
            a,
            b,
            false,
            FaultVerdict::Deliver(d),
        )
    }
    /// Delays frames from `a` to `b` by `d`.
    pub fn delay_one_way(a: &str, b: &str, d: Duration) -> FaultRule {
        Self::between(
            format!("delay {a} → {b}"),
            a,
            b,
            true,
            FaultVerdict::Deliver(d),
        )
    }
    /// Holds frames between `a` and `b`, both ways, until released.
    pub fn hold(a: &str, b: &str) -> FaultRule {
        Self::between(format!("hold {a} | {b}"), a, b, false, FaultVerdict::Hold)
    }
    /// Holds frames from `a` to `b` until released.
    pub fn hold_one_way(a: &str, b: &str) -> FaultRule {
        Self::between(format!("hold {a} → {b}"), a, b, true, FaultVerdict::Hold)
    }
    /// Drops frames matching `pred`, whoever sends them.
    pub fn drop_if(name: &str, pred: impl Fn(&InFlight<'_>) -> bool + 'static) -> FaultRule {
        Self::new(name, move |f| {
            if pred(f) {
                FaultVerdict::Drop
            } else {
                FaultVerdict::Pass
            }
        })
    }
    /// Drops frames from `a` to `b` matching `pred`.
    pub fn drop_one_way_if(
        name: &str,
        a: &str,
        b: &str,
        pred: impl Fn(&InFlight<'_>) -> bool + 'static,
    ) -> FaultRule {
        let (a, b) = (a.to_string(), b.to_string());
        Self::drop_if(name, move |f| f.from == a && f.to == b && pred(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(rule: &FaultRule, from: &str, to: &str) -> FaultVerdict {
        (rule.rule)(&InFlight {
            segment: "s",
            from,
            to,
            frame: &[],
        })
    }

    #[test]
    fn a_partition_cuts_both_directions_and_nothing_else() {
        let r = FaultRule::partition("a", "b");
        assert_eq!(ask(&r, "a", "b"), FaultVerdict::Drop);
        assert_eq!(ask(&r, "b", "a"), FaultVerdict::Drop);
        assert_eq!(ask(&r, "a", "c"), FaultVerdict::Pass);
    }

    #[test]
    fn one_way_variants_leave_the_reverse_direction_alone() {
        let d = Duration::from_millis(5);
        for (r, v) in [
            (FaultRule::partition_one_way("a", "b"), FaultVerdict::Drop),
            (
                FaultRule::delay_one_way("a", "b", d),
                FaultVerdict::Deliver(d),
            ),
            (FaultRule::hold_one_way("a", "b"), FaultVerdict::Hold),
            (
                FaultRule::drop_one_way_if("x", "a", "b", |_| true),
                FaultVerdict::Drop,
            ),
        ] {
            assert_eq!(ask(&r, "a", "b"), v, "{}", r.name);
            assert_eq!(ask(&r, "b", "a"), FaultVerdict::Pass, "{}", r.name);
        }
    }

    #[test]
    fn drop_if_sees_the_frame_bytes() {
        let r = FaultRule::drop_if("arp", |f| f.frame.get(12..14) == Some(&[0x08, 0x06][..]));
        let mut frame = [0u8; 14];
        let verdict = |frame: &[u8]| {
            (r.rule)(&InFlight {
                segment: "s",
                from: "a",
                to: "b",
                frame,
            })
        };
        assert_eq!(verdict(&frame), FaultVerdict::Pass);
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(verdict(&frame), FaultVerdict::Drop);
    }
}
