//! What a click on an arrow shows: the frame's whole trace (every hop and
//! NAT step, its fate, which frame it answered) and, per wire, the pcap
//! file and frame number and the bytes in hex. Serialised once per trace
//! into the page's JSON; the page's script only displays it.

use crate::wire::hex;
use natsim_scenario::explain::{disposition, step_line};
use natsim_scenario::VariantResult;
use natsim_sim::FrameTrace;
use serde_json::{json, Value};
use std::path::Path;

/// The pcap file `natsim run --pcap DIR` writes for this variant's segment.
pub fn pcap_name(r: &VariantResult, segment: &str) -> String {
    let stem = Path::new(&r.file)
        .file_stem()
        .map_or("scenario".into(), |s| s.to_string_lossy().to_string());
    format!("{stem}--{}--{segment}.pcap", r.variant)
}

/// Bytes shown in hex per frame: every header and an ALG's rewritten
/// payload fit; the rest is in the pcap (a whole suite's page would
/// otherwise pass the size budget on bulk and looping mail).
const HEX_SHOWN: usize = 320;

fn shown_hex(bytes: &[u8], frame: Option<u64>) -> String {
    if bytes.len() <= HEX_SHOWN {
        return hex(bytes);
    }
    let more = bytes.len() - HEX_SHOWN;
    let at = frame.map_or(String::new(), |f| format!(" (pcap frame {f})"));
    format!(
        "{}\n… {more} more bytes in the pcap{at}",
        hex(&bytes[..HEX_SHOWN])
    )
}

pub fn trace(r: &VariantResult, t: &FrameTrace) -> Value {
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
            json!({"node": h.node, "at": h.at.to_string(), "via": via, "steps": steps})
        })
        .collect();
    let legs: Vec<Value> = t
        .legs
        .iter()
        .map(|l| {
            json!({
                "segment": l.segment,
                "from": l.from,
                "to": l.to,
                "at": l.at.to_string(),
                "pcap": pcap_name(r, &l.segment),
                "frame": l.pcap_frame,
                "len": l.bytes.len(),
                "hex": shown_hex(&l.bytes, l.pcap_frame),
            })
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
