//! TCP connection tracking: a simplified Linux conntrack state machine.
//!
//! Only flags are tracked (no sequence windows): the engine needs the
//! state to pick the idle timeout (RFC 5382 REQ-5) and to know when a
//! connection has closed. Simultaneous open (RFC 5382 REQ-2) is allowed: a
//! SYN in the reply direction moves SYN_SENT to SYN_RECV.

use crate::config::Timeouts;
use crate::flow::Dir;
use crate::frame::TcpFlags;
use crate::time::Duration;
use crate::trace::TcpState;

/// The state a connection starts in, given its first segment's flags.
/// A first segment without SYN is picked up mid-stream as ESTABLISHED, as
/// Linux does with `nf_conntrack_tcp_loose`.
pub(crate) fn initial(flags: TcpFlags) -> TcpState {
    if flags.has(TcpFlags::RST) {
        TcpState::Close
    } else if flags.has(TcpFlags::SYN) && !flags.has(TcpFlags::ACK) {
        TcpState::SynSent
    } else {
        TcpState::Established
    }
}

/// The next state after a segment with `flags` travelling in `dir`.
pub(crate) fn next(state: TcpState, dir: Dir, flags: TcpFlags) -> TcpState {
    use TcpState::*;
    if flags.has(TcpFlags::RST) {
        return Close;
    }
    let syn = flags.has(TcpFlags::SYN);
    let ack = flags.has(TcpFlags::ACK);
    let fin = flags.has(TcpFlags::FIN);
    match (state, dir) {
        // A fresh SYN from the originator after close reopens (RFC 7857 §3:
        // TIME_WAIT reuse).
        (TimeWait | Close, Dir::Original) if syn && !ack => SynSent,
        (SynSent, Dir::Reply) if syn => SynRecv,
        (SynSent, Dir::Original) => SynSent,
        (SynRecv, Dir::Original) if ack && !syn => Established,
        (SynRecv, _) => SynRecv,
        (Established, Dir::Original) if fin => FinWait,
        (Established, Dir::Reply) if fin => CloseWait,
        (FinWait, Dir::Reply) if fin => LastAck,
        (CloseWait, Dir::Original) if fin => LastAck,
        (LastAck, _) if ack && !fin => TimeWait,
        (s, _) => s,
    }
}

pub(crate) fn timeout(t: &Timeouts, s: TcpState) -> Duration {
    match s {
        TcpState::SynSent => t.tcp_syn_sent,
        TcpState::SynRecv => t.tcp_syn_recv,
        TcpState::Established => t.tcp_established,
        TcpState::FinWait => t.tcp_fin_wait,
        TcpState::CloseWait => t.tcp_close_wait,
        TcpState::LastAck => t.tcp_last_ack,
        TcpState::TimeWait => t.tcp_time_wait,
        TcpState::Close => t.tcp_close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TcpState::*;
    const SYN: TcpFlags = TcpFlags::SYN;
    const ACK: TcpFlags = TcpFlags::ACK;
    const FIN: TcpFlags = TcpFlags::FIN;
    const RST: TcpFlags = TcpFlags::RST;

    #[test]
    fn three_way_handshake_reaches_established() {
        let s = initial(SYN);
        let s = next(s, Dir::Reply, SYN | ACK);
        assert_eq!(s, SynRecv);
        assert_eq!(next(s, Dir::Original, ACK), Established);
    }

    #[test]
    fn both_fins_and_the_last_ack_reach_time_wait() {
        let s = next(Established, Dir::Original, FIN | ACK);
        let s = next(s, Dir::Reply, FIN | ACK);
        assert_eq!(s, LastAck);
        assert_eq!(next(s, Dir::Original, ACK), TimeWait);
    }

    #[test]
    fn simultaneous_open_is_allowed() {
        assert_eq!(next(SynSent, Dir::Reply, SYN), SynRecv);
    }

    #[test]
    fn rst_closes_from_any_state() {
        for s in [SynSent, SynRecv, Established, FinWait, TimeWait] {
            assert_eq!(next(s, Dir::Reply, RST), Close);
        }
    }

    #[test]
    fn new_syn_reopens_a_time_wait_connection() {
        assert_eq!(next(TimeWait, Dir::Original, SYN), SynSent);
    }
}
