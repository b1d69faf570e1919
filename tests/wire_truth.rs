//! Every shipped scenario's captures, read by tshark (skipped without it):
//! what no real network shows must not show here either.
//! - a host whose SYN was never answered sends no RST (RFC 9293 §3.10.4:
//!   giving up in SYN-SENT deletes the TCB);
//! - every TCP stream that carried an SMTP or FTP QUIT ends with a FIN
//!   from both sides (RFC 5321 §4.1.1.10, RFC 959);
//! - no malformed frame and no bad IP/TCP/UDP/ICMP checksum.

use natsim::scenario::{collect, load_file, run_variant};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A variant's captures: (segment, pcap bytes).
type SegmentPcaps = Vec<(String, Vec<u8>)>;

/// One shipped scenario's captures, each variant run once (it must pass)
/// and each segment written once, then read by tshark field by field.
struct Captures {
    loaded: natsim::scenario::Loaded,
    dir: PathBuf,
    pcaps: std::cell::RefCell<BTreeMap<String, SegmentPcaps>>,
}

impl Captures {
    fn new(file: &str, tag: &str) -> Captures {
        let dir = std::env::temp_dir().join(format!("natsim-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Captures {
            loaded: load_file(&root().join("scenarios").join(file)).unwrap(),
            dir,
            pcaps: Default::default(),
        }
    }

    /// `field` of every frame of `variant`'s capture on `seg` that matches
    /// the display filter `filter`, one line per frame.
    fn fields(&self, variant: &str, seg: &str, filter: &str, field: &str) -> Vec<String> {
        let mut pcaps = self.pcaps.borrow_mut();
        let segs = pcaps.entry(variant.to_string()).or_insert_with(|| {
            let v = self.loaded.variant(variant).unwrap();
            let r = run_variant(&self.loaded, v, None, true).unwrap();
            assert!(r.pass, "{variant} fails");
            r.pcaps.clone()
        });
        let bytes = &segs.iter().find(|(s, _)| s == seg).unwrap().1;
        let p = self.dir.join(format!("{variant}-{seg}.pcap"));
        std::fs::write(&p, bytes).unwrap();
        let out = Command::new("tshark")
            .args([
                "-r",
                p.to_str().unwrap(),
                "-Y",
                filter,
                "-T",
                "fields",
                "-e",
                field,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    }
}

#[derive(Default, Debug)]
struct Stream {
    /// Sender of the first SYN without ACK.
    initiator: Option<String>,
    syn_acked: bool,
    rst_from: Vec<String>,
    fin_from: Vec<String>,
    quit: bool,
}

const FIELDS: &[&str] = &[
    "frame.number",
    "tcp.stream",
    "ip.src",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.flags.reset",
    "tcp.flags.fin",
    "smtp.req.command",
    "ftp.request.command",
];

#[test]
fn shipped_captures_show_no_rst_after_unanswered_syns_and_fins_after_quit() {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("note: tshark not installed; skipping");
        return;
    }
    let dir = std::env::temp_dir().join(format!("natsim-truth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut problems = Vec::new();
    let mut quits = 0;
    let mut unanswered = 0;
    for f in collect(&root().join("scenarios")).unwrap() {
        let l = load_file(&f).unwrap_or_else(|_| panic!("{}", f.display()));
        for v in l.variants() {
            let r = run_variant(&l, v, None, true).unwrap();
            for (seg, bytes) in &r.pcaps {
                let name = format!(
                    "{}:{}:{seg}",
                    f.file_name().unwrap().to_string_lossy(),
                    r.variant
                );
                let p = dir.join(format!("{}.pcap", name.replace([':', '/'], "_")));
                std::fs::write(&p, bytes).unwrap();
                let p = p.to_str().unwrap();
                // Malformed frames and bad checksums.
                let bad = Command::new("tshark")
                    .args([
                        "-r",
                        p,
                        "-o",
                        "ip.check_checksum:TRUE",
                        "-o",
                        "tcp.check_checksum:TRUE",
                        "-o",
                        "udp.check_checksum:TRUE",
                        "-Y",
                        // The TCP/UDP header quoted in an ICMP error is cut
                        // short (RFC 1812 §4.3.2.3), so its checksum cannot
                        // verify; the ICMP checksum covers the quote.
                        "_ws.malformed || icmp.checksum.status == 0 || (!icmp && (ip.checksum.status == 0 \
                         || tcp.checksum.status == 0 || udp.checksum.status == 0))",
                    ])
                    .output()
                    .unwrap();
                let bad = String::from_utf8_lossy(&bad.stdout).to_string();
                if !bad.trim().is_empty() {
                    problems.push(format!("{name}: malformed or bad checksum:\n{bad}"));
                }
                let mut args = vec![
                    "-r",
                    p,
                    "-d",
                    "tcp.port==2121,ftp",
                    "-Y",
                    "tcp",
                    "-T",
                    "fields",
                ];
                for fl in FIELDS {
                    args.push("-e");
                    args.push(fl);
                }
                let out = Command::new("tshark").args(&args).output().unwrap();
                let mut streams: BTreeMap<u64, Stream> = BTreeMap::new();
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    let c: Vec<&str> = line.split('\t').collect();
                    let Ok(id) = c[1].parse::<u64>() else {
                        continue;
                    };
                    let on = |k: usize| matches!(c.get(k), Some(&"1") | Some(&"True"));
                    let s = streams.entry(id).or_default();
                    let src = c[2].to_string();
                    if on(3) && !on(4) && s.initiator.is_none() {
                        s.initiator = Some(src.clone());
                    }
                    if on(3) && on(4) {
                        s.syn_acked = true;
                    }
                    if on(5) {
                        s.rst_from.push(src.clone());
                    }
                    if on(6) && !s.fin_from.contains(&src) {
                        s.fin_from.push(src.clone());
                    }
                    let cmd = |k: usize| {
                        c.get(k)
                            .is_some_and(|x| x.split(',').any(|y| y.eq_ignore_ascii_case("QUIT")))
                    };
                    if cmd(7) || cmd(8) {
                        s.quit = true;
                    }
                }
                for (id, s) in &streams {
                    if let (Some(i), false) = (&s.initiator, s.syn_acked) {
                        unanswered += 1;
                        if s.rst_from.contains(i) {
                            problems.push(format!(
                                "{name}: stream {id}: {i} sent a RST after its SYN went unanswered"
                            ));
                        }
                    }
                    if s.quit {
                        quits += 1;
                        if s.fin_from.len() < 2 {
                            problems.push(format!(
                                "{name}: stream {id} carried QUIT but FINs came only from {:?}",
                                s.fin_from
                            ));
                        }
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    // The shipped scenarios do contain both cases, or this proves nothing.
    assert!(
        quits > 0 && unanswered > 0,
        "quits {quits}, unanswered {unanswered}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The PMTUD black hole and its fixes as tshark reads them: the ISP
/// router's ICMP "fragmentation needed" (type 3 code 4) carries the
/// next-hop MTU 1492 (RFC 1191 §4); with clamping, the SYN leaves the DSL
/// router with MSS 1452 (1492 − 40, as TCPMSS --clamp-mss-to-pmtu).
#[test]
fn tshark_shows_fragmentation_needed_and_the_clamped_mss() {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("note: tshark not installed; skipping");
        return;
    }
    let caps = Captures::new("pmtu-blackhole.toml", "pmtu");
    let fields = |variant: &str, seg: &str, filter: &str, field: &str| {
        caps.fields(variant, seg, filter, field)
    };
    for variant in ["base", "icmp-allowed"] {
        let mtus = fields(
            variant,
            "internet",
            "icmp.type == 3 && icmp.code == 4",
            "icmp.mtu",
        );
        assert!(!mtus.is_empty(), "{variant}: no fragmentation needed");
        assert!(mtus.iter().all(|m| m == "1492"), "{variant}: {mtus:?}");
    }
    // Blocked: the error never reaches the server's network.
    assert!(fields(
        "base",
        "dmz",
        "icmp.type == 3 && icmp.code == 4",
        "icmp.mtu"
    )
    .is_empty());
    assert!(!fields(
        "icmp-allowed",
        "dmz",
        "icmp.type == 3 && icmp.code == 4",
        "icmp.mtu"
    )
    .is_empty());
    let syn = "tcp.flags.syn == 1 && tcp.flags.ack == 0";
    assert!(fields("mss-clamp", "lan", syn, "tcp.options.mss_val")
        .iter()
        .all(|m| m == "1460"));
    let clamped = fields("mss-clamp", "pppoe", syn, "tcp.options.mss_val");
    assert!(
        !clamped.is_empty() && clamped.iter().all(|m| m == "1452"),
        "{clamped:?}"
    );
    let _ = std::fs::remove_dir_all(&caps.dir);
}

/// A 3000-byte ping over the 1492-byte PPPoE link, as tshark reads it:
/// every packet on the link fits its MTU, the request and the reply cross
/// it in fragments, and tshark reassembles both into 3000 bytes of echo
/// data on each side of the NAT (RFC 791 reassembly, by an independent
/// implementation). A NAT that drops fragments lets no reply reach the LAN.
#[test]
fn tshark_reassembles_a_big_ping_on_both_sides_of_the_nat() {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("note: tshark not installed; skipping");
        return;
    }
    let caps = Captures::new("fragments.toml", "frag");
    let fields = |variant: &str, seg: &str, filter: &str, field: &str| {
        caps.fields(variant, seg, filter, field)
    };
    for variant in ["base", "rfc-router-translates-fragments"] {
        let lens = fields(variant, "pppoe", "ip", "ip.len");
        assert!(
            lens.iter().all(|n| n.parse::<usize>().unwrap() <= 1492),
            "{variant}: a packet over the PPPoE MTU: {lens:?}"
        );
        let frags = fields(variant, "pppoe", "ip.flags.mf == 1", "ip.len");
        assert!(frags.len() >= 4, "{variant}: {frags:?}");
        for (seg, request, reply) in [
            ("lan", "ip.src == 192.168.1.20", "ip.dst == 192.168.1.20"),
            ("pppoe", "ip.src == 198.51.100.2", "ip.dst == 198.51.100.2"),
        ] {
            for (kind, dir) in [(8, request), (0, reply)] {
                let got = fields(
                    variant,
                    seg,
                    &format!("icmp.type == {kind} && {dir} && ip.fragment.count > 1"),
                    "data.len",
                );
                assert!(
                    got.iter().any(|n| n == "3000"),
                    "{variant} {seg}: no reassembled 3000-byte echo type {kind}: {got:?}"
                );
            }
        }
    }
    // The request's pieces on the PPPoE link, as Linux 6.18 cut them in
    // network namespaces (client → nft masquerade → server, `ping -M dont
    // -s 3000`): 1492 + 1492 + 84 behind a 1500 LAN; behind a 1000 LAN the
    // reassembled datagram is cut to its largest fragment, 996 + 996 + 996
    // + 100, although the egress MTU is larger (ip_do_fragment with
    // IPCB(skb)->frag_max_size).
    for (variant, kernel) in [
        ("base", &["1492", "1492", "84"][..]),
        ("small-lan-mtu", &["996", "996", "996", "100"][..]),
    ] {
        let got = fields(
            variant,
            "pppoe",
            "icmp || ip.flags.mf == 1 || ip.frag_offset > 0",
            "ip.len",
        );
        let request = fields(
            variant,
            "pppoe",
            "ip.src == 198.51.100.2 && (icmp.type == 8 || ip.frag_offset > 0 || ip.flags.mf == 1)",
            "ip.len",
        );
        let big: Vec<&str> = request
            .iter()
            .map(String::as_str)
            .skip_while(|n| *n != kernel[0])
            .take(kernel.len())
            .collect();
        assert_eq!(big, kernel, "{variant}: pieces on the PPPoE link: {got:?}");
    }
    // Every fragment of a datagram carries the same TTL (one header, cut
    // up): on the LAN, the client's stack answers pc2's 2000-byte ping in
    // fragments with its profile's TTL, 128, in each of them.
    let ttls = fields(
        "base",
        "lan",
        "ip.src == 192.168.1.20 && ip.dst == 192.168.1.21",
        "ip.ttl",
    );
    assert!(
        ttls.len() >= 2 && ttls.iter().all(|t| t == "128"),
        "{ttls:?}"
    );
    // Don't Fragment as each OS sets it: a Windows ping has none (`ping -l`
    // without `-f`), a Linux one has it (IP_PMTUDISC_WANT), and Linux's
    // echo replies never do (its ICMP socket is IP_PMTUDISC_DONT, seen in
    // namespaces: a 1500-byte reply crossed a 1492 link in fragments).
    let df = |variant: &str, seg: &str, filter: &str| fields(variant, seg, filter, "ip.flags.df");
    let win = df(
        "base",
        "lan",
        "icmp.type == 8 && !(icmp.type == 3) && ip.len == 1500",
    );
    assert!(
        !win.is_empty() && win.iter().all(|d| d == "0" || d == "False"),
        "{win:?}"
    );
    let lin = df(
        "linux-client",
        "lan",
        "icmp.type == 8 && !(icmp.type == 3) && ip.len == 1500",
    );
    assert!(
        !lin.is_empty() && lin.iter().all(|d| d == "1" || d == "True"),
        "{lin:?}"
    );
    let replies = df(
        "base",
        "internet",
        "icmp.type == 0 && ip.src == 203.0.113.10",
    );
    assert!(
        !replies.is_empty() && replies.iter().all(|d| d == "0" || d == "False"),
        "{replies:?}"
    );
    let replies = fields(
        "router-drops-fragments",
        "lan",
        "icmp.type == 0 && data.len == 3000",
        "frame.number",
    );
    assert!(replies.is_empty(), "{replies:?}");
    let _ = std::fs::remove_dir_all(&caps.dir);
}
