//! The conntrack-class probe: one connection driven into a given
//! conntrack state (TCP SYN_SENT, ESTABLISHED or CLOSE; UDP unreplied,
//! replied or stream; ICMP), then the world's connection table read as
//! the step to compare.

use super::*;

/// Drives `client`'s connection to `remote` from `sport` into `class`.
pub(super) fn run(r: &mut Rec<'_>, class: CtClass, client: usize, remote: usize, sport: u16) {
    let dst = r.addr(remote);
    match class {
        CtClass::TcpSynSent => {
            first_request(r, packet::TCP, client, dst, sport, 80, remote);
        }
        CtClass::TcpEstablished | CtClass::TcpClose => {
            exchange(r, packet::TCP, Rule::Exact, client, dst, sport, 80, remote);
            let ip = r.ip(client, dst);
            let fl = if class == CtClass::TcpClose {
                flags::RST | flags::ACK
            } else {
                flags::ACK
            };
            r.send(
                "ACK".into(),
                Rule::Exact,
                client,
                packet::tcp(ip, sport, 80, 1001, 5001, fl, &[]),
            );
        }
        CtClass::UdpUnreplied => {
            first_request(r, packet::UDP, client, dst, sport, 3478, remote);
        }
        CtClass::UdpReplied | CtClass::UdpStream => {
            exchange(
                r,
                packet::UDP,
                Rule::Exact,
                client,
                dst,
                sport,
                3478,
                remote,
            );
            if class == CtClass::UdpStream {
                // nf_conntrack_udp_packet: stream_ts = creation + 2 s.
                r.w.sleep(Duration::from_millis(2200));
                let ip = r.ip(client, dst);
                r.send(
                    "request after 2.2 s".into(),
                    Rule::Exact,
                    client,
                    packet::udp(ip, sport, 3478, b"again"),
                );
            }
        }
        CtClass::Icmp => {
            exchange(
                r,
                packet::ICMP,
                Rule::Exact,
                client,
                dst,
                sport,
                sport,
                remote,
            );
        }
    }
    r.table("conntrack table");
}
