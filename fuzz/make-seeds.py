#!/usr/bin/env python3
"""Turns the simulator's captures of the shipped scenarios into seeds for the
engine_replay target: records of [direction][length u16 BE][frame].

Run from the repository root after
  cargo run --release -p natsim-cli -- run -q scenarios/ --pcap target/seed-pcaps
Frames captured on a segment whose name contains "lan" count as inside."""
import os, struct, sys

src = sys.argv[1] if len(sys.argv) > 1 else "target/seed-pcaps"
dst = os.path.join(os.path.dirname(__file__), "seeds", "engine_replay")
os.makedirs(dst, exist_ok=True)
for name in sorted(os.listdir(src)):
    if not name.endswith(".pcap"):
        continue
    data = open(os.path.join(src, name), "rb").read()
    inside = "lan" in name.rsplit("--", 1)[-1]
    # pcap-file writes big-endian headers; accept either order.
    order = ">" if data[:4] == b"\xa1\xb2\xc3\xd4" else "<"
    out, at = bytearray(), 24
    while at + 16 <= len(data) and len(out) < 60000:
        _, _, incl, _ = struct.unpack(order + "IIII", data[at:at + 16])
        frame = data[at + 16:at + 16 + incl]
        at += 16 + incl
        if frame[12:14] != b"\x08\x00":
            continue
        out += bytes([0 if inside else 1]) + struct.pack(">H", len(frame)) + frame
    if out:
        open(os.path.join(dst, name.replace(".pcap", ".seed")), "wb").write(out)
