//! The router's connection timeouts as the kernel's conntrack sysctls,
//! which are per network namespace and count whole seconds.

use natsim_nat::Timeouts;
use std::time::Duration;

/// `(sysctl, seconds)` for every timeout, or why the kernel cannot be
/// given these: a value that is not whole seconds, or a UDP stream age
/// other than the 2 s `nf_conntrack_udp_packet` has built in.
pub fn conntrack_timeouts(t: &Timeouts) -> Result<Vec<(&'static str, u64)>, String> {
    if t.udp_stream_after != Timeouts::LINUX.udp_stream_after {
        return Err(format!(
            "udp_stream_after = {:?}: the kernel counts a UDP flow as a stream after 2 s and has no setting for it",
            t.udp_stream_after
        ));
    }
    let all = [
        (
            "tcp_syn_sent",
            "net.netfilter.nf_conntrack_tcp_timeout_syn_sent",
            t.tcp_syn_sent,
        ),
        (
            "tcp_syn_recv",
            "net.netfilter.nf_conntrack_tcp_timeout_syn_recv",
            t.tcp_syn_recv,
        ),
        (
            "tcp_established",
            "net.netfilter.nf_conntrack_tcp_timeout_established",
            t.tcp_established,
        ),
        (
            "tcp_fin_wait",
            "net.netfilter.nf_conntrack_tcp_timeout_fin_wait",
            t.tcp_fin_wait,
        ),
        (
            "tcp_close_wait",
            "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
            t.tcp_close_wait,
        ),
        (
            "tcp_last_ack",
            "net.netfilter.nf_conntrack_tcp_timeout_last_ack",
            t.tcp_last_ack,
        ),
        (
            "tcp_time_wait",
            "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
            t.tcp_time_wait,
        ),
        (
            "tcp_close",
            "net.netfilter.nf_conntrack_tcp_timeout_close",
            t.tcp_close,
        ),
        (
            "udp_unreplied",
            "net.netfilter.nf_conntrack_udp_timeout",
            t.udp_unreplied,
        ),
        (
            "udp_replied",
            "net.netfilter.nf_conntrack_udp_timeout_stream",
            t.udp_replied,
        ),
        ("icmp", "net.netfilter.nf_conntrack_icmp_timeout", t.icmp),
        (
            "generic",
            "net.netfilter.nf_conntrack_generic_timeout",
            t.generic,
        ),
    ];
    all.into_iter()
        .map(|(field, key, d)| {
            whole_seconds(d).map(|s| (key, s)).ok_or_else(|| {
                format!(
                    "{field} = {d:?} ({key}): the kernel's conntrack timeouts are whole seconds"
                )
            })
        })
        .collect()
}

fn whole_seconds(d: Duration) -> Option<u64> {
    (d.subsec_nanos() == 0).then_some(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `linux` profile's timeouts are the kernel's defaults: the
    /// values a fresh network namespace of Linux 6.18 holds.
    #[test]
    fn the_linux_profile_sets_the_kernels_defaults() {
        let kernel = [
            ("tcp_timeout_syn_sent", 120),
            ("tcp_timeout_syn_recv", 60),
            ("tcp_timeout_established", 432000),
            ("tcp_timeout_fin_wait", 120),
            ("tcp_timeout_close_wait", 60),
            ("tcp_timeout_last_ack", 30),
            ("tcp_timeout_time_wait", 120),
            ("tcp_timeout_close", 10),
            ("udp_timeout", 30),
            ("udp_timeout_stream", 120),
            ("icmp_timeout", 30),
            ("generic_timeout", 600),
        ];
        let got = conntrack_timeouts(&Timeouts::LINUX).unwrap();
        let want: Vec<(String, u64)> = kernel
            .iter()
            .map(|(k, v)| (format!("net.netfilter.nf_conntrack_{k}"), *v))
            .collect();
        let got: Vec<(String, u64)> = got.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn what_the_kernel_cannot_be_told_is_refused() {
        let mut t = Timeouts::LINUX;
        t.tcp_established = Duration::from_millis(1500);
        assert!(conntrack_timeouts(&t)
            .unwrap_err()
            .contains("whole seconds"));
        let mut t = Timeouts::LINUX;
        t.udp_stream_after = Duration::ZERO;
        assert!(conntrack_timeouts(&t).unwrap_err().contains("no setting"));
    }
}
