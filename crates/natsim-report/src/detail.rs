//! What a click on an arrow shows: the frame's whole trace (every hop and
//! NAT step, its fate, which frame it answered) and, per wire, the pcap
//! frame number and the bytes in hex. Serialised once per trace into the
//! page's JSON; the page's script only displays it. The pcap file's name
//! is the variant's (`data-pcap` on its section) with the leg's segment.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use natsim_scenario::explain::{disposition, step_line};
use natsim_sim::FrameTrace;
use serde_json::{json, Value};

/// Bytes shown in hex per frame: every header and an ALG's rewritten
/// payload fit; the rest is in the pcap (a whole suite's page would
/// otherwise pass the size budget on bulk and looping mail).
const HEX_SHOWN: usize = 320;

/// The shown bytes in base64 (the page's script lays out the hex dump:
/// a third of the size of the dump itself) and how many more the pcap has.
fn shown_bytes(bytes: &[u8]) -> (String, usize) {
    let n = bytes.len().min(HEX_SHOWN);
    (STANDARD.encode(&bytes[..n]), bytes.len() - n)
}

/// One trace as the page's script reads it. Hops and legs are arrays, not
/// objects (a whole suite has thousands; their key names alone would be a
/// tenth of the page): a hop is `[node, at, via, steps]`, a leg is
/// `[segment, from, to, at, pcap frame, base64 bytes, bytes not shown]`.
pub fn trace(t: &FrameTrace) -> Value {
    let hops: Vec<Value> = t
        .hops
        .iter()
        .map(|h| {
            let via = match (&h.iface_in, &h.iface_out) {
                (Some(i), Some(o)) => format!("{i} → {o}"),
                (Some(i), None) => format!("in {i}"),
                (None, Some(o)) => format!("out {o}"),
                (None, None) => String::new(),
            };
            let steps: Vec<String> = h.steps.iter().filter_map(step_line).collect();
            json!([h.node, h.at.to_string(), via, steps])
        })
        .collect();
    let legs: Vec<Value> = t
        .legs
        .iter()
        .map(|l| {
            let shown = shown_bytes(&l.bytes);
            json!([
                l.segment,
                l.from,
                l.to,
                l.at.to_string(),
                l.pcap_frame,
                shown.0,
                shown.1
            ])
        })
        .collect();
    json!({
        "id": t.id,
        "summary": t.summary,
        "origin": t.origin,
        "at": t.at.to_string(),
        "fate": disposition(&t.disposition),
        "reply_to": t.reply_to,
        "hops": hops,
        "legs": legs,
    })
}
