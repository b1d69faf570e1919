use natsim_linux::*;
use natsim_nat::*;
use std::net::Ipv4Addr;
fn main() {
    let mut nat = NatConfig::new(Behaviour::linux())
        .interface(IfaceId(0), Ipv4Addr::new(192, 168, 1, 1), 24, Role::Inside)
        .interface(IfaceId(1), Ipv4Addr::new(203, 0, 113, 1), 24, Role::Outside);
    nat.rules.masquerade("masq", IfaceId(1), None);
    nat.rules.forward(
        "web",
        IfaceId(1),
        Proto::Tcp,
        PortRange::single(8080),
        Ipv4Addr::new(192, 168, 1, 10),
        Some(80),
    );
    if std::env::args().any(|a| a == "--hairpin-masq") {
        nat.rules.push(Rule {
            name: "hairpin".into(),
            chain: Chain::Postrouting,
            matches: Match {
                out_iface: Some(IfaceId(0)),
                ct_dnat: Some(true),
                ..Match::default()
            },
            action: Action::Masquerade {
                ports: PortRange::ALL,
                random: natsim_nat::PortFlag::Profile,
            },
        });
    }
    let spec = RouterSpec {
        name: "home".into(),
        ifaces: vec![
            IfaceSpec {
                name: "lan0".into(),
                addr: Ipv4Addr::new(192, 168, 1, 1),
                prefix_len: 24,
                role: Role::Inside,
            },
            IfaceSpec {
                name: "wan0".into(),
                addr: Ipv4Addr::new(203, 0, 113, 1),
                prefix_len: 24,
                role: Role::Outside,
            },
        ],
        nat,
    };
    let t = std::time::Instant::now();
    match verify(spec) {
        Ok(r) => {
            print!("{}", render(&r.results, 200));
            eprintln!("{:?}", t.elapsed());
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2)
        }
    }
}
