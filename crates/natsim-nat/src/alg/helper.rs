//! What the segment driver (`conn`) asks of a payload helper, and what a
//! helper may ask back: the one interface between the driver and the
//! protocol parsers (`epm`, `ftp`), so neither knows the other's insides.

use super::stream::Edit;
use super::AlgEvent;
use crate::flow::Endpoint;
use std::net::Ipv4Addr;

/// Which side of the connection a segment comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Side {
    /// Travelling server → client (the connection's reply direction).
    pub server_to_client: bool,
    /// The inside host's real address.
    pub inside: Ipv4Addr,
}

/// What a helper produced from some bytes.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub edits: Vec<Edit>,
    pub events: Vec<AlgEvent>,
}

/// Opens pinholes on the helper's behalf.
pub(crate) trait Pinholes {
    /// A pinhole forwarding to `internal`; returns its external endpoint
    /// (reused if one is already open to the same place).
    fn open(&mut self, internal: Endpoint, out: &mut Out) -> Option<Endpoint>;
}

/// One connection's payload inspector. `d` is the direction's index (0:
/// original, 1: reply); each direction's bytes arrive once and in order.
pub(crate) trait Helper: core::fmt::Debug {
    /// Feeds direction `d`'s in-order bytes starting at stream offset
    /// `off`. `Err` names what broke the protocol's framing.
    fn feed(
        &mut self,
        d: usize,
        side: &Side,
        off: u64,
        bytes: &[u8],
        holes: &mut dyn Pinholes,
        out: &mut Out,
    ) -> Result<(), &'static str>;
    /// Where a trim must cut, if the bytes fed so far end inside a unit the
    /// helper must see whole (an EPM tower, an FTP command line).
    fn hold(&self, d: usize, side: &Side) -> Option<u64>;
    /// Forgets the held unit: the trim makes the sender send it again.
    fn rewind(&mut self, d: usize);
}
