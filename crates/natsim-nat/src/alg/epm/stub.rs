//! The NDR walker over an `ept_map` / `ept_lookup` response stub (DCE 1.1
//! RPC ch. 14, NDR; MS-RPCE): finds each protocol tower and rewrites the
//! ones that name the inside server.

use super::{MAX_ITEMS, MAX_TOWER};
use crate::alg::helper::{Out, Pinholes, Side};
use crate::alg::stream::Edit;
use crate::alg::{AlgEvent, AlgPass};
use crate::flow::Endpoint;
use crate::wire::dcerpc::parse_tower;

/// NDR walker over an `ept_map` / `ept_lookup` response stub.
#[derive(Clone, Debug)]
pub(super) struct Stub {
    lookup: bool,
    /// Stub offset (for NDR alignment).
    pos: u32,
    st: St,
    word: [u8; 4],
    word_have: u8,
    /// Items left in the current array.
    left: u32,
    /// Non-null tower pointers seen.
    towers: u32,
    tower: Option<Tower>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Skip(u32, Next),
    Num,
    Max,
    Offset,
    Actual,
    Ref,
    EntRef,
    AnnOffset,
    AnnCount,
    TowerLen,
    TowerMax,
    TowerBytes,
    Status,
    Done,
}

/// What follows a fixed-size skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Num,
    EntRef,
    AfterAnnotation,
}

#[derive(Clone, Debug)]
struct Tower {
    len: u32,
    have: u32,
    bytes: Vec<u8>,
    /// Stream offset of each tower byte (fragment headers may interleave).
    offs: Vec<u64>,
}

impl Stub {
    pub(super) fn new(lookup: bool) -> Stub {
        Stub {
            lookup,
            pos: 0,
            st: St::Skip(20, Next::Num),
            word: [0; 4],
            word_have: 0,
            left: 0,
            towers: 0,
            tower: None,
        }
    }

    fn aligned_word(&self) -> bool {
        matches!(
            self.st,
            St::Skip(16, Next::EntRef)
                | St::Num
                | St::Max
                | St::Offset
                | St::Actual
                | St::Ref
                | St::EntRef
                | St::AnnOffset
                | St::AnnCount
                | St::TowerLen
                | St::TowerMax
                | St::Status
        )
    }

    /// In the middle of a tower (a trim must cut before it).
    pub(super) fn in_tower(&self) -> bool {
        self.tower.is_some()
    }

    /// The next byte begins a tower (its length word).
    pub(super) fn tower_starts_here(&self) -> bool {
        self.st == St::TowerLen && self.word_have == 0 && self.pos.is_multiple_of(4)
    }

    fn after_towers_header(&mut self) {
        self.left = self.towers;
        self.st = if self.left == 0 {
            St::Status
        } else {
            St::TowerLen
        };
    }

    /// Consumes one stub byte at stream offset `off`.
    pub(super) fn byte(
        &mut self,
        b: u8,
        off: u64,
        side: &Side,
        holes: &mut dyn Pinholes,
        out: &mut Out,
    ) -> Result<(), &'static str> {
        let pos = self.pos;
        self.pos = self.pos.wrapping_add(1);
        if self.aligned_word() && self.word_have == 0 && !pos.is_multiple_of(4) {
            return Ok(()); // NDR alignment padding
        }
        match self.st {
            St::Skip(n, next) => {
                self.st = if n > 1 {
                    St::Skip(n - 1, next)
                } else {
                    match next {
                        Next::Num => St::Num,
                        Next::EntRef => St::EntRef,
                        Next::AfterAnnotation => self.next_entry(),
                    }
                };
                return Ok(());
            }
            St::TowerBytes => {
                let t = self.tower.as_mut().ok_or("tower state")?;
                t.bytes.push(b);
                t.offs.push(off);
                t.have += 1;
                if t.have == t.len {
                    let t = self.tower.take().ok_or("tower state")?;
                    tower_done(&t, side, holes, out);
                    self.left -= 1;
                    self.st = if self.left == 0 {
                        St::Status
                    } else {
                        St::TowerLen
                    };
                }
                return Ok(());
            }
            St::Done => return Ok(()),
            _ => {}
        }
        if self.st == St::TowerLen && self.word_have == 0 {
            self.tower = Some(Tower {
                len: 0,
                have: 0,
                bytes: Vec::new(),
                offs: Vec::new(),
            });
        }
        self.word[usize::from(self.word_have)] = b;
        self.word_have += 1;
        if self.word_have < 4 {
            return Ok(());
        }
        self.word_have = 0;
        let w = u32::from_le_bytes(self.word);
        match self.st {
            St::Num => self.st = St::Max,
            St::Max => {
                if w > MAX_ITEMS {
                    return Err("absurd array size");
                }
                self.st = St::Offset;
            }
            St::Offset => {
                if w != 0 {
                    return Err("non-zero array offset");
                }
                self.st = St::Actual;
            }
            St::Actual => {
                if w > MAX_ITEMS {
                    return Err("absurd array size");
                }
                self.left = w;
                if self.lookup {
                    self.st = if w == 0 {
                        St::Status
                    } else {
                        St::Skip(16, Next::EntRef)
                    };
                } else if w == 0 {
                    self.st = St::Status;
                } else {
                    self.st = St::Ref;
                }
            }
            St::Ref => {
                if w != 0 {
                    self.towers += 1;
                }
                self.left -= 1;
                if self.left == 0 {
                    self.after_towers_header();
                }
            }
            St::EntRef => {
                if w != 0 {
                    self.towers += 1;
                }
                self.st = St::AnnOffset;
            }
            St::AnnOffset => self.st = St::AnnCount,
            St::AnnCount => {
                if w > 64 {
                    return Err("annotation longer than 64");
                }
                self.st = if w == 0 {
                    self.next_entry()
                } else {
                    St::Skip(w, Next::AfterAnnotation)
                };
            }
            St::TowerLen => {
                if w > MAX_TOWER {
                    return Err("tower too large");
                }
                if w < 2 {
                    return Err("truncated tower");
                }
                if let Some(t) = self.tower.as_mut() {
                    t.len = w;
                }
                self.st = St::TowerMax;
            }
            St::TowerMax => {
                let len = self.tower.as_ref().map_or(0, |t| t.len);
                if w != len {
                    return Err("tower length mismatch");
                }
                self.st = St::TowerBytes;
            }
            St::Status => self.st = St::Done,
            _ => {}
        }
        Ok(())
    }

    fn next_entry(&mut self) -> St {
        self.left -= 1;
        if self.left == 0 {
            self.after_towers_header();
            self.st
        } else {
            St::Skip(16, Next::EntRef)
        }
    }
}

/// Rewrites a finished tower if it names the inside server.
fn tower_done(t: &Tower, side: &Side, holes: &mut dyn Pinholes, out: &mut Out) {
    let tower = match parse_tower(&t.bytes) {
        Ok(x) => x,
        Err(what) => {
            out.events.push(AlgEvent::Passed {
                why: AlgPass::Malformed { what },
            });
            return;
        }
    };
    let (Some(port), Some(addr)) = (tower.port, tower.addr) else {
        return; // not ncacn_ip_tcp
    };
    if addr != side.inside {
        out.events.push(AlgEvent::Passed {
            why: AlgPass::NotInside { addr },
        });
        return;
    }
    let internal = Endpoint::new(addr, port);
    let Some(external) = holes.open(internal, out) else {
        out.events.push(AlgEvent::Passed {
            why: AlgPass::NoFreePort,
        });
        return;
    };
    // Locate the rhs bytes of floors 4 and 5 by walking the floors again.
    let mut at = 2usize;
    let floors = usize::from(tower.floors);
    for _ in 0..floors {
        let lhs_len = usize::from(u16::from_le_bytes([t.bytes[at], t.bytes[at + 1]]));
        let proto = t.bytes[at + 2];
        at += 2 + lhs_len;
        let rhs_len = usize::from(u16::from_le_bytes([t.bytes[at], t.bytes[at + 1]]));
        let rhs = at + 2;
        at = rhs + rhs_len;
        let new: Option<Vec<u8>> = match (proto, rhs_len) {
            (0x07, 2) if external.port != port => Some(external.port.to_be_bytes().to_vec()),
            (0x09, 4) => Some(external.addr.octets().to_vec()),
            _ => None,
        };
        if let Some(new) = new {
            edit_bytes(&t.offs[rhs..rhs + rhs_len], &new, out);
        }
    }
    out.events.push(AlgEvent::TowerRewritten {
        from: internal,
        to: external,
    });
}

/// Same-length edits at possibly non-contiguous offsets, one per run.
fn edit_bytes(offs: &[u64], new: &[u8], out: &mut Out) {
    let mut i = 0;
    while i < offs.len() {
        let mut j = i + 1;
        while j < offs.len() && offs[j] == offs[j - 1] + 1 {
            j += 1;
        }
        out.edits.push(Edit {
            off: offs[i],
            old_len: (j - i) as u32,
            new: new[i..j].to_vec(),
        });
        i = j;
    }
}
