//! Fault rules in turmoil's style: each rule looks at a frame in flight and
//! answers `Pass`, `Deliver(delay)` or `Drop`; the first non-`Pass` answer
//! wins. Partition, hold and one-way variants are rules too.

use std::time::Duration;

/// A rule's answer for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultVerdict {
    Pass,
    /// Deliver after this extra delay.
    Deliver(Duration),
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
    /// Drops everything between `a` and `b`, both ways.
    pub fn partition(a: &str, b: &str) -> FaultRule {
        let (a, b) = (a.to_string(), b.to_string());
        Self::new(&format!("partition {a} | {b}"), move |f| {
            if (f.from == a && f.to == b) || (f.from == b && f.to == a) {
                FaultVerdict::Drop
            } else {
                FaultVerdict::Pass
            }
        })
    }
    /// Drops frames from `a` to `b` only.
    pub fn partition_one_way(a: &str, b: &str) -> FaultRule {
        let (a, b) = (a.to_string(), b.to_string());
        Self::new(&format!("partition {a} → {b}"), move |f| {
            if f.from == a && f.to == b {
                FaultVerdict::Drop
            } else {
                FaultVerdict::Pass
            }
        })
    }
    /// Delays frames from `a` to `b` by `d` (a hold released after `d`).
    pub fn hold_one_way(a: &str, b: &str, d: Duration) -> FaultRule {
        let (a, b) = (a.to_string(), b.to_string());
        Self::new(&format!("hold {a} → {b}"), move |f| {
            if f.from == a && f.to == b {
                FaultVerdict::Deliver(d)
            } else {
                FaultVerdict::Pass
            }
        })
    }
    /// Drops frames matching `pred`.
    pub fn drop_if(name: &str, pred: impl Fn(&InFlight<'_>) -> bool + 'static) -> FaultRule {
        Self::new(name, move |f| {
            if pred(f) {
                FaultVerdict::Drop
            } else {
                FaultVerdict::Pass
            }
        })
    }
}
