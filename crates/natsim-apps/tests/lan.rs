//! Each protocol end to end on one LAN segment (no NAT), and the captures
//! checked field by field with tshark where it is installed.

use hickory_proto::rr::RecordType;
use natsim_apps::dns::{DnsLookup, DnsServer, LookupResult, Zone};
use natsim_apps::exchange::{
    exchange_registrations, AddressMode, Outlook, OutlookOutcome, RpcServer, Server,
};
use natsim_apps::ftp::{FtpClient, FtpMode, FtpOutcome, FtpServer};
use natsim_apps::http::{HttpClient, HttpOutcome, HttpServer};
use natsim_apps::mail::{DeliveryStatus, Mta};
use natsim_apps::smtp::{Domains, SmtpServer};
use natsim_sim::*;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 53);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 20);

fn lan() -> (Sim, SegmentId, NodeId, NodeId, NodeId) {
    let mut sim = Sim::builder().seed(3).build();
    let seg = sim.segment("lan", LinkParams::default());
    let dns = sim.host("dns", HostConfig::new(seg, DNS, 24)).unwrap();
    let server = sim
        .host("server", HostConfig::new(seg, SERVER, 24).dns(DNS))
        .unwrap();
    let client = sim
        .host("client", HostConfig::new(seg, CLIENT, 24).dns(DNS))
        .unwrap();
    let zone = Zone::new("example.com")
        .a("mail.example.com", SERVER)
        .mx("example.com", 10, "mail.example.com")
        .a("server.example.com", SERVER);
    sim.add_app(dns, Box::new(DnsServer::new(vec![zone])))
        .unwrap();
    (sim, seg, dns, server, client)
}

fn tshark_fields(sim: &Sim, seg: SegmentId, filter: &str, field: &str) -> Option<Vec<String>> {
    if std::process::Command::new("tshark")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("note: tshark not installed; skipping field checks");
        return None;
    }
    let path =
        std::env::temp_dir().join(format!("natsim-apps-{}-{field}.pcap", std::process::id()));
    std::fs::write(&path, sim.pcap_bytes(seg)).unwrap();
    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            path.to_str().unwrap(),
            "-d",
            "tcp.port==1025,dcerpc",
            "-d",
            "tcp.port==1026,dcerpc",
            "-Y",
            filter,
            "-T",
            "fields",
            "-e",
            field,
        ])
        .output()
        .unwrap();
    let all = std::process::Command::new("tshark")
        .args(["-r", path.to_str().unwrap(), "-V"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&all.stdout);
    assert!(
        !text.contains("Malformed"),
        "malformed frames in the capture"
    );
    let _ = std::fs::remove_file(&path);
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
    )
}

#[test]
fn dns_answers_mx_a_nxdomain_and_nodata() {
    let (mut sim, seg, _, _, client) = lan();
    let mx = sim
        .add_app(
            client,
            Box::new(DnsLookup::new("example.com", RecordType::MX, vec![])),
        )
        .unwrap();
    let a = sim
        .add_app(
            client,
            Box::new(DnsLookup::new("mail.example.com", RecordType::A, vec![])),
        )
        .unwrap();
    let nx = sim
        .add_app(
            client,
            Box::new(DnsLookup::new("nope.example.com", RecordType::A, vec![])),
        )
        .unwrap();
    let nodata = sim
        .add_app(
            client,
            Box::new(DnsLookup::new("server.example.com", RecordType::MX, vec![])),
        )
        .unwrap();
    sim.run_for(Duration::from_secs(3));
    assert!(
        matches!(sim.app::<DnsLookup>(mx).unwrap().result(), Some(LookupResult::Exchanges { mx, .. }) if mx == &vec![(10, "mail.example.com".to_string())])
    );
    assert!(
        matches!(sim.app::<DnsLookup>(a).unwrap().result(), Some(LookupResult::Addresses { addrs, .. }) if addrs == &vec![SERVER])
    );
    assert!(matches!(
        sim.app::<DnsLookup>(nx).unwrap().result(),
        Some(LookupResult::NxDomain { .. })
    ));
    assert!(matches!(
        sim.app::<DnsLookup>(nodata).unwrap().result(),
        Some(LookupResult::NoData { .. })
    ));
    if let Some(v) = tshark_fields(&sim, seg, "dns.mx.mail_exchange", "dns.mx.mail_exchange") {
        assert_eq!(v, vec!["mail.example.com"]);
    }
    // NODATA as Wireshark's DNS dissector reads it (RFC 2308 §2.2):
    // NOERROR, no answers, one authority record, and that record an SOA.
    let nodata = "dns.flags.response == 1 && dns.qry.name == \"server.example.com\"";
    if let Some(v) = tshark_fields(&sim, seg, nodata, "dns.flags.rcode") {
        assert_eq!(v, vec!["0"]);
    }
    if let Some(v) = tshark_fields(&sim, seg, nodata, "dns.count.answers") {
        assert_eq!(v, vec!["0"]);
    }
    if let Some(v) = tshark_fields(&sim, seg, nodata, "dns.count.auth_rr") {
        assert_eq!(v, vec!["1"]);
    }
    if let Some(v) = tshark_fields(&sim, seg, nodata, "dns.soa.mname") {
        assert_eq!(v, vec!["ns.example.com"]);
    }
    // NXDOMAIN (rcode 3) carries the SOA too (RFC 2308 §2.1).
    let nx = "dns.flags.response == 1 && dns.qry.name == \"nope.example.com\"";
    if let Some(v) = tshark_fields(&sim, seg, nx, "dns.flags.rcode") {
        assert_eq!(v, vec!["3"]);
    }
    if let Some(v) = tshark_fields(&sim, seg, nx, "dns.soa.rname") {
        assert_eq!(v, vec!["hostmaster.example.com"]);
    }
}

#[test]
fn mta_delivers_by_mx_and_the_capture_shows_the_smtp_commands() {
    let (mut sim, seg, _, server, client) = lan();
    let smtp = sim
        .add_app(
            server,
            Box::new(SmtpServer::new(
                "mail.example.com",
                Box::new(Domains(vec!["example.com".into()])),
            )),
        )
        .unwrap();
    let mta = sim
        .add_app(client, Box::new(Mta::new("sender.example.net")))
        .unwrap();
    let now = sim.now();
    let id = sim
        .with_app::<Mta, _>(mta, |m| {
            m.submit("alice@example.net", "bob@example.com", "hello", now)
        })
        .unwrap();
    sim.run_for(Duration::from_secs(10));
    let status = sim.app::<Mta>(mta).unwrap().status(id).unwrap().clone();
    assert!(
        matches!(status, DeliveryStatus::Delivered { .. }),
        "{status:?}"
    );
    assert_eq!(
        sim.app::<SmtpServer>(smtp).unwrap().received[0].to,
        vec!["bob@example.com"]
    );
    if let Some(v) = tshark_fields(&sim, seg, "smtp.req.command", "smtp.req.command") {
        assert_eq!(v, vec!["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]);
    }
}

#[test]
fn outlook_gets_the_endpoint_from_the_epm_and_connects() {
    let (mut sim, seg, _, server, client) = lan();
    let regs = exchange_registrations(1025, None, None);
    sim.add_app(server, Box::new(RpcServer::endpoint_mapper(regs.clone())))
        .unwrap();
    for r in &regs {
        sim.add_app(server, Box::new(RpcServer::service(r)))
            .unwrap();
    }
    let o = sim
        .add_app(
            client,
            Box::new(Outlook::new(
                Server::Name("server.example.com".into()),
                AddressMode::TowerAddress,
            )),
        )
        .unwrap();
    sim.run_for(Duration::from_secs(5));
    assert_eq!(
        sim.app::<Outlook>(o).unwrap().outcome,
        Some(OutlookOutcome::Connected {
            via: "10.0.0.10:1025".into(),
            endpoint_returned: "10.0.0.10:1025".into(),
            directory_via: "10.0.0.10:1026".into(),
        })
    );
    if let Some(v) = tshark_fields(&sim, seg, "dcerpc", "dcerpc.pkt_type") {
        // For the store, then for the directory: bind, bind_ack, request,
        // response on 135; bind, bind_ack on the endpoint.
        assert_eq!(
            v,
            vec!["11", "12", "0", "2", "11", "12", "11", "12", "0", "2", "11", "12"]
        );
    }
    // The directory's interface (NSPI) is what the second bind asks for.
    if let Some(v) = tshark_fields(&sim, seg, "dcerpc.pkt_type == 11", "dcerpc.cn_bind_to_uuid") {
        assert!(
            v.iter()
                .any(|u| u.starts_with("f5cc5a18-4264-101a-8c59-08002b2f8426")),
            "{v:?}"
        );
    }
    if let Some(v) = tshark_fields(&sim, seg, "epm.proto.tcp_port", "epm.proto.tcp_port") {
        assert!(v.iter().any(|p| p == "1025"), "{v:?}");
    }
    if let Some(v) = tshark_fields(&sim, seg, "epm.proto.ip", "epm.proto.ip") {
        assert!(v.iter().any(|a| a == "10.0.0.10"), "{v:?}");
    }
}

#[test]
fn http_get_fetches_the_owa_page() {
    let (mut sim, _, _, server, client) = lan();
    let pages = BTreeMap::from([(
        "/exchange".to_string(),
        "<html>Outlook Web Access</html>".to_string(),
    )]);
    sim.add_app(server, Box::new(HttpServer::new(80, pages)))
        .unwrap();
    let c = sim
        .add_app(client, Box::new(HttpClient::new((SERVER, 80), "/exchange")))
        .unwrap();
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        sim.app::<HttpClient>(c).unwrap().outcome,
        Some(HttpOutcome::Response {
            status: 200,
            body_len: 31
        })
    );
}

#[test]
fn ftp_downloads_in_all_four_modes() {
    for mode in [
        FtpMode::Active,
        FtpMode::ActiveExtended,
        FtpMode::Passive,
        FtpMode::PassiveExtended,
    ] {
        let (mut sim, _, _, server, client) = lan();
        let files = BTreeMap::from([("readme.txt".to_string(), vec![b'x'; 3000])]);
        sim.add_app(server, Box::new(FtpServer::new(files)))
            .unwrap();
        let c = sim
            .add_app(client, Box::new(FtpClient::new(SERVER, "readme.txt", mode)))
            .unwrap();
        sim.run_for(Duration::from_secs(10));
        let out = sim.app::<FtpClient>(c).unwrap().outcome.clone();
        assert!(
            matches!(out, Some(FtpOutcome::Downloaded { bytes: 3000, .. })),
            "{mode:?}: {out:?}"
        );
    }
}

/// TCP segments of the connection to `port` on `seg`: (from the server?,
/// flags, payload).
fn segments_of(sim: &Sim, seg: SegmentId, port: u16) -> Vec<(bool, u8, Vec<u8>)> {
    let mut out = Vec::new();
    for (_, f) in sim.capture(seg) {
        if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
            continue;
        }
        let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
        let total = 14 + usize::from(u16::from_be_bytes([f[16], f[17]]));
        let (sp, dp) = (
            u16::from_be_bytes([f[l4], f[l4 + 1]]),
            u16::from_be_bytes([f[l4 + 2], f[l4 + 3]]),
        );
        if sp != port && dp != port {
            continue;
        }
        let data = l4 + usize::from(f[l4 + 12] >> 4) * 4;
        out.push((sp == port, f[l4 + 13], f[data..total].to_vec()));
    }
    out
}

/// RFC 5321 §4.1.1.10 / RFC 959: the server answers QUIT with 221 and
/// closes; the client reads the 221 and closes too. Both FINs on the
/// wire, the client's after the 221, and no RST.
fn assert_closed_after_quit(segs: &[(bool, u8, Vec<u8>)], what: &str) {
    const FIN: u8 = 0x01;
    const RST: u8 = 0x04;
    assert!(segs.iter().all(|s| s.1 & RST == 0), "{what}: a RST");
    let quit = segs
        .iter()
        .position(|s| !s.0 && s.2.starts_with(b"QUIT"))
        .unwrap_or_else(|| panic!("{what}: no QUIT"));
    let reply = segs
        .iter()
        .position(|s| s.0 && s.2.starts_with(b"221"))
        .unwrap_or_else(|| panic!("{what}: no 221"));
    assert!(reply > quit);
    let server_fin = segs.iter().position(|s| s.0 && s.1 & FIN != 0);
    let client_fin = segs.iter().position(|s| !s.0 && s.1 & FIN != 0);
    assert!(server_fin.is_some(), "{what}: the server never sent FIN");
    let c = client_fin.unwrap_or_else(|| panic!("{what}: the client never sent FIN"));
    assert!(
        c >= reply,
        "{what}: the client closed before reading the 221"
    );
}

#[test]
fn smtp_and_ftp_sessions_end_with_a_fin_from_both_sides_after_quit() {
    let (mut sim, seg, _, server, client) = lan();
    sim.add_app(
        server,
        Box::new(SmtpServer::new(
            "mail.example.com",
            Box::new(Domains(vec!["example.com".into()])),
        )),
    )
    .unwrap();
    let files = BTreeMap::from([("readme.txt".to_string(), vec![b'x'; 3000])]);
    sim.add_app(server, Box::new(FtpServer::new(files)))
        .unwrap();
    let mta = sim
        .add_app(client, Box::new(Mta::new("sender.example.net")))
        .unwrap();
    let now = sim.now();
    sim.with_app::<Mta, _>(mta, |m| {
        m.submit("alice@example.net", "bob@example.com", "hello", now)
    })
    .unwrap();
    sim.add_app(
        client,
        Box::new(FtpClient::new(SERVER, "readme.txt", FtpMode::Passive)),
    )
    .unwrap();
    sim.run_for(Duration::from_secs(10));
    assert_closed_after_quit(&segments_of(&sim, seg, 25), "smtp");
    assert_closed_after_quit(&segments_of(&sim, seg, 21), "ftp");
}
