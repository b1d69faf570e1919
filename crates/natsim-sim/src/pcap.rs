//! Classic pcap output (Ethernet link type) with virtual timestamps, via
//! the `pcap-file` crate.

use natsim_nat::Instant;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use std::io::Write;
use std::time::Duration;

pub fn write<W: Write>(w: W, frames: &[(Instant, Vec<u8>)]) -> std::io::Result<()> {
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut pw = PcapWriter::with_header(w, header).map_err(std::io::Error::other)?;
    for (t, f) in frames {
        let ts = Duration::from_micros(t.total_micros());
        pw.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .map_err(std::io::Error::other)?;
    }
    Ok(())
}
