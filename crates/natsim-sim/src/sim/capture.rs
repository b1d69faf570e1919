//! Per-segment capture and its pcap output, in virtual time.

use super::*;

impl Sim {
    /// Keep frames for pcaps (on by default).
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on;
    }

    /// The frames captured on a segment: (time, bytes).
    pub fn capture(&self, seg: SegmentId) -> &[(Instant, Vec<u8>)] {
        &self.segments[seg.0].capture
    }

    /// Writes one pcap per segment as `dir/<prefix><segment>.pcap`, with
    /// virtual timestamps. Returns the paths.
    pub fn write_pcaps(
        &self,
        dir: &std::path::Path,
        prefix: &str,
    ) -> std::io::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut paths = Vec::new();
        for s in &self.segments {
            let safe: String = s
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let path = dir.join(format!("{prefix}{safe}.pcap"));
            let file = std::fs::File::create(&path)?;
            crate::pcap::write(std::io::BufWriter::new(file), &s.capture)?;
            paths.push(path);
        }
        Ok(paths)
    }

    /// A segment's capture as pcap bytes.
    pub fn pcap_bytes(&self, seg: SegmentId) -> Vec<u8> {
        let mut v = Vec::new();
        let _ = crate::pcap::write(&mut v, &self.segments[seg.0].capture);
        v
    }
}
