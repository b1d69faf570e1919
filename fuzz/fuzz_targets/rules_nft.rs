//! The nft JSON importer on arbitrary bytes and on a real `nft -j`
//! document (the one verify generates for a Docker-like router, in the
//! shape `nft -j list ruleset` prints) with arbitrary bytes spliced in, so
//! that most inputs are JSON the `nftables` crate's types accept.
//!
//! Invariants: no panic; a refusal is located (line and column >= 1, a
//! non-empty message and what is supported); an accepted document is
//! accepted again identically.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

const BASE: &str = r#"{"nftables":[{"metainfo":{"version":"1.0.6","release_name":"Lester Gooch #5","json_schema_version":1}},{"table":{"family":"ip","name":"natsim","handle":1}},{"chain":{"family":"ip","table":"natsim","name":"prerouting","handle":1,"type":"nat","hook":"prerouting","prio":-100,"policy":"accept"}},{"chain":{"family":"ip","table":"natsim","name":"postrouting","handle":2,"type":"nat","hook":"postrouting","prio":100,"policy":"accept"}},{"chain":{"family":"ip","table":"natsim","name":"forward","handle":3,"type":"filter","hook":"forward","prio":0,"policy":"drop"}},{"chain":{"family":"ip","table":"natsim","name":"docker","handle":4}},{"rule":{"family":"ip","table":"natsim","chain":"prerouting","handle":5,"expr":[{"match":{"op":"==","left":{"fib":{"result":"type","flags":["daddr"]}},"right":"local"}},{"jump":{"target":"docker"}}]}},{"rule":{"family":"ip","table":"natsim","chain":"docker","handle":6,"expr":[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"docker0"}},{"return":null}]}},{"rule":{"family":"ip","table":"natsim","chain":"docker","handle":7,"expr":[{"match":{"op":"!=","left":{"meta":{"key":"iifname"}},"right":"docker0"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":8080}},{"counter":{"packets":0,"bytes":0}},{"dnat":{"addr":"172.17.0.2","port":80}}]}},{"rule":{"family":"ip","table":"natsim","chain":"postrouting","handle":8,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"172.17.0.0","len":16}}}},{"match":{"op":"!=","left":{"meta":{"key":"oifname"}},"right":"docker0"}},{"masquerade":null}]}},{"rule":{"family":"ip","table":"natsim","chain":"forward","handle":9,"expr":[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}},{"accept":null}]}},{"rule":{"family":"ip","table":"natsim","chain":"forward","handle":10,"expr":[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"reject":{"type":"tcp reset"}}]}}]}"#;

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Splice { at: u16, cut: u8, insert: String },
}

fn check(src: &str) {
    match natsim_import::import("fuzz.json", src, None) {
        Err(e) => {
            assert!(e.loc.line >= 1 && e.loc.col >= 1, "unlocated: {e}");
            assert!(!e.message.is_empty() && !e.supported.is_empty(), "{e}");
        }
        Ok(imp) => {
            let again = natsim_import::import("fuzz.json", src, None).expect("accepted once, accepted again");
            assert_eq!(imp, again);
        }
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(b) => {
            if let Ok(s) = std::str::from_utf8(&b) {
                check(s);
            }
        }
        Input::Splice { at, cut, insert } => {
            let mut at = usize::from(at) % BASE.len();
            while !BASE.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + usize::from(cut % 32)).min(BASE.len());
            while !BASE.is_char_boundary(end) {
                end -= 1;
            }
            check(&format!("{}{}{}", &BASE[..at], insert, &BASE[end..]));
        }
    }
});
