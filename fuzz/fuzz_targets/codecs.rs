//! The DCE/RPC PDU codec and the DNS server's answer path.
//!
//! Invariants: no panic; a PDU that parses re-parses to the same value
//! after `emit`; a DNS answer the server emits is a valid DNS message with
//! the query's id; the ept_map stub walkers never panic on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natsim_apps::dcerpc::{ept_map_requested_interface, ept_map_response_towers, Packet, Repr};
use natsim_apps::dns::{answer, Zone};
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::new_checked(data) {
        if let Ok(r) = Repr::parse(&p) {
            let bytes = r.emit();
            let again = Repr::parse(&Packet::new_checked(&bytes[..]).expect("emitted PDU has a valid header")).expect("emitted PDU re-parses");
            assert_eq!(again, r, "emit/parse round trip");
        }
    }
    let _ = ept_map_response_towers(data);
    let _ = ept_map_requested_interface(data);
    let _ = natsim_nat::alg::epm::parse_tower(data);
    let zones = [Zone::new("example.com").a("mail.example.com", Ipv4Addr::new(192, 0, 2, 1)).mx("example.com", 10, "mail.example.com")];
    if let Some(resp) = answer(&zones, data) {
        let m = hickory_proto::op::Message::from_vec(&resp).expect("the server's answer parses");
        let q = hickory_proto::op::Message::from_vec(data).expect("it answered a parsable query");
        assert_eq!(m.metadata.id, q.metadata.id);
    }
});
