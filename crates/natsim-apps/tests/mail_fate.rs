//! A message followed to its end on a simulated LAN: delivered to a
//! mailbox, NDR'd as a loop (RFC 5321 §6.3 Received counting), expired
//! after the IMS's message time-out, and DNS resolvers moving on (or not)
//! after REFUSED and silence.

use hickory_proto::rr::RecordType;
use natsim_apps::dns::{DnsServer, LookupResult, Zone};
use natsim_apps::fate::{follow, Fate};
use natsim_apps::ims::{Action, Ims};
use natsim_apps::mail::{DeliveryStatus, ImsConfig, Mta, RoutingEntry};
use natsim_sim::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 53);
const REFUSER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 54);
const SILENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 99);
const IMS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const SENDER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 20);

struct World {
    sim: Sim,
    ims: AppId,
    mta: AppId,
    apps: Vec<AppId>,
}

fn world(cfg: ImsConfig) -> World {
    let mut sim = Sim::builder().seed(5).build();
    let seg = sim.segment("lan", LinkParams::default());
    let dns = sim.host("dns", HostConfig::new(seg, DNS, 24)).unwrap();
    let ims_host = sim
        .host("ims", HostConfig::new(seg, IMS, 24).dns(DNS))
        .unwrap();
    let sender = sim
        .host("sender", HostConfig::new(seg, SENDER, 24).dns(DNS))
        .unwrap();
    // Runs nothing: its TCP answers RST, its UDP nothing we read.
    sim.host("silent", HostConfig::new(seg, SILENT, 24))
        .unwrap();
    let zone = Zone::new("example.com").a("server.example.com", IMS);
    sim.add_app(dns, Box::new(DnsServer::new(vec![zone])))
        .unwrap();
    let ims = sim
        .add_app(ims_host, Box::new(Ims::new("server.example.com", cfg)))
        .unwrap();
    let mta = sim
        .add_app(sender, Box::new(Mta::new("relay.example.net")))
        .unwrap();
    sim.run_for(Duration::from_millis(100));
    World {
        sim,
        ims,
        mta,
        apps: vec![ims, mta],
    }
}

fn ims_config() -> ImsConfig {
    let mut c = ImsConfig::new("Microsoft", "SITE", "SERVER", "10.0.0.10");
    c.mailboxes = vec!["user".into()];
    c.reroute = true;
    c
}

#[test]
fn a_literal_with_an_inbound_entry_reaches_the_mailbox() {
    let mut cfg = ims_config();
    cfg.routing = vec![RoutingEntry {
        domain: "10.0.0.10".into(),
        accept_as_inbound: true,
    }];
    let mut w = world(cfg);
    let now = w.sim.now();
    let id = w
        .sim
        .with_app::<Mta, _>(w.mta, |m| {
            m.submit("a@b.org", "user@[10.0.0.10]", "hi", now)
        })
        .unwrap();
    w.sim.run_for(Duration::from_secs(5));
    let f = follow(&w.sim, &w.apps, w.mta, id);
    assert_eq!(
        f.fate,
        Fate::Delivered {
            mailbox: "user@[10.0.0.10]".into()
        }
    );
    assert_eq!(f.path(), vec!["10.0.0.10".to_string()]);
    assert_eq!(
        f.summary(),
        "delivered to mailbox user@[10.0.0.10] via 10.0.0.10"
    );
    assert_eq!(w.sim.app::<Ims>(w.ims).unwrap().mailbox.len(), 1);
}

/// Without the inbound entry, rerouting sends the message back to the
/// IMS's own address. Every pass adds one Received field; with
/// `max_hops = 5` the passes with 1..=5 fields are relayed and the one
/// with 6 is stopped with the hop-count NDR.
#[test]
fn a_message_looping_to_its_own_server_is_ndrd_after_max_hops() {
    let mut cfg = ims_config();
    cfg.routing = vec![RoutingEntry {
        domain: "mail.example.com".into(),
        accept_as_inbound: true,
    }];
    cfg.max_hops = 5;
    let mut w = world(cfg);
    let now = w.sim.now();
    let id = w
        .sim
        .with_app::<Mta, _>(w.mta, |m| {
            m.submit("a@b.org", "user@[10.0.0.10]", "hi", now)
        })
        .unwrap();
    w.sim.run_for(Duration::from_secs(5));
    let ims = w.sim.app::<Ims>(w.ims).unwrap();
    let passes: Vec<usize> = ims.dispositions.iter().map(|d| d.received).collect();
    assert_eq!(passes, vec![1, 2, 3, 4, 5, 6]);
    assert!(ims.dispositions[..5]
        .iter()
        .all(|d| matches!(d.action, Action::Relayed { .. })));
    assert!(
        matches!(&ims.dispositions[5].action, Action::Ndr { diagnostic, .. } if diagnostic.contains("hop count exceeded the maximum"))
    );
    assert!(ims.mailbox.is_empty());
    let f = follow(&w.sim, &w.apps, w.mta, id);
    assert!(matches!(f.fate, Fate::Ndr { .. }), "{f:?}");
    // The first hop from the sender, then five passes over loopback.
    assert_eq!(f.hops.len(), 6);
    assert!(f.body.as_deref().unwrap().contains("Undeliverable: hi"));
}

/// Nothing listens at the smart host: the IMS retries on its schedule
/// (.25, .5, 1, 4, 4, ... h) and returns the message with an NDR when it
/// has been queued for the 48 h time-out: not before, and not at the
/// retry after it.
#[test]
fn a_deferred_message_expires_after_the_message_time_out() {
    let mut cfg = ims_config();
    cfg.smart_host = Some(SILENT);
    let mut w = world(cfg);
    let now = w.sim.now();
    let id = w
        .sim
        .with_app::<Ims, _>(w.ims, |i| {
            i.mta
                .submit("user@[10.0.0.10]", "bob@partner.example", "late", now)
        })
        .unwrap();
    w.sim.run_for(Duration::from_secs(60));
    let f = follow(&w.sim, &w.apps, w.ims, id);
    assert!(
        f.summary().contains("gives up after 48 h"),
        "{}",
        f.summary()
    );
    // At 47 h 59 min it is still queued; at 48 h 1 min it is back.
    w.sim.run_for(Duration::from_secs(48 * 3600 - 120));
    assert!(matches!(
        follow(&w.sim, &w.apps, w.ims, id).fate,
        Fate::Deferred { .. }
    ));
    w.sim.run_for(Duration::from_secs(120));
    let ims = w.sim.app::<Ims>(w.ims).unwrap();
    let m = &ims.mta.messages[id];
    match &m.status {
        DeliveryStatus::Bounced {
            reason,
            exchange_ndr,
            ..
        } => {
            assert!(*exchange_ndr);
            assert!(reason.contains("4.4.7"), "{reason}");
        }
        other => panic!("not returned: {other:?}"),
    }
    // Attempts at 0, +15 min, +45 min, +1 h 45, then every 4 h: the one
    // after 45 h 45 min would be at 49 h 45, past the time-out, so the
    // message waits for the time-out instead.
    let expected = 4 + ((48 * 60 - 105) / 240) as usize;
    assert_eq!(m.failures as usize, expected);
    let after = m.attempts.len();
    assert_eq!(after, expected, "{:?}", m.attempts);
    assert!(matches!(
        follow(&w.sim, &w.apps, w.ims, id).fate,
        Fate::Ndr { .. }
    ));
}

/// One lookup with a given resolver profile, as an app.
struct One(natsim_apps::dns::Lookup);
impl App for One {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        self.0.poll(cx);
    }
    fn poll_at(&self) -> Option<natsim_nat::Instant> {
        self.0.poll_at()
    }
    natsim_sim::any_impls!();
}

fn resolver_world() -> (Sim, NodeId) {
    let mut sim = Sim::builder().seed(8).build();
    let seg = sim.segment("lan", LinkParams::default());
    let good = sim.host("dns", HostConfig::new(seg, DNS, 24)).unwrap();
    let refuser = sim
        .host("refuser", HostConfig::new(seg, REFUSER, 24))
        .unwrap();
    let client = sim
        .host("client", HostConfig::new(seg, SENDER, 24))
        .unwrap();
    // A host with no DNS server: queries to it go unanswered.
    sim.host("silent", HostConfig::new(seg, SILENT, 24))
        .unwrap();
    sim.add_app(
        good,
        Box::new(DnsServer::new(vec![
            Zone::new("example.com").a("server.example.com", IMS)
        ])),
    )
    .unwrap();
    // Holds another zone only: REFUSED for example.com.
    sim.add_app(
        refuser,
        Box::new(DnsServer::new(vec![Zone::new("corp.example")])),
    )
    .unwrap();
    sim.run_for(Duration::from_millis(100));
    (sim, client)
}

/// REFUSED moves the BSD resolver (res_send.c `next_ns`) and the Windows
/// resolver on to the next server; nslookup asks its default server only.
#[test]
fn refused_moves_resolvers_on_but_not_nslookup() {
    let (mut sim, client) = resolver_world();
    let run = |sim: &mut Sim, profile: &'static str| {
        let l = natsim_apps::dns::Lookup::with_profile(
            "server.example.com",
            RecordType::A,
            vec![REFUSER, DNS],
            profile,
        );
        let id = sim.add_app(client, Box::new(One(l))).unwrap();
        sim.run_for(Duration::from_secs(30));
        sim.app::<One>(id).unwrap().0.result.clone()
    };
    for p in ["bind", "windows"] {
        assert!(
            matches!(run(&mut sim, p), Some(LookupResult::Addresses { server, .. }) if server == DNS),
            "{p}"
        );
    }
    assert_eq!(
        run(&mut sim, "nslookup"),
        Some(LookupResult::Refused { server: REFUSER })
    );
}

/// A silent first server: the BSD resolver waits RES_TIMEOUT (5 s) before
/// the second; Windows asks the first alone for 1 s, again for 2 s, then
/// all servers; nslookup gives up after two 2 s tries of its default
/// server.
#[test]
fn silence_moves_on_after_each_clients_timeout() {
    let (mut sim, client) = resolver_world();
    let sent = |sim: &mut Sim, profile: &'static str| {
        let l = natsim_apps::dns::Lookup::with_profile(
            "server.example.com",
            RecordType::A,
            vec![SILENT, DNS],
            profile,
        );
        let start = sim.now();
        let id = sim.add_app(client, Box::new(One(l))).unwrap();
        sim.run_for(Duration::from_secs(30));
        let one = &sim.app::<One>(id).unwrap().0;
        let times: Vec<(u64, Ipv4Addr)> = one
            .sent
            .iter()
            .map(|(t, s)| {
                (
                    t.saturating_duration_since(start).as_millis() as u64 / 100,
                    *s,
                )
            })
            .collect();
        (times, one.result.clone())
    };
    let (t, r) = sent(&mut sim, "bind");
    assert_eq!(t, vec![(0, SILENT), (50, DNS)]);
    assert!(matches!(r, Some(LookupResult::Addresses { .. })));
    let (t, r) = sent(&mut sim, "windows");
    assert_eq!(t, vec![(0, SILENT), (10, SILENT), (30, SILENT), (30, DNS)]);
    assert!(matches!(r, Some(LookupResult::Addresses { .. })));
    let (t, r) = sent(&mut sim, "nslookup");
    assert_eq!(t, vec![(0, SILENT), (20, SILENT)]);
    assert_eq!(r, Some(LookupResult::Timeout));
}
