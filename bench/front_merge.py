"""Merge judged front entries from several `physgen bench front` runs into one table and plot.

The quality-versus-speed front of one geometry is often judged in pieces (one model per
session, as runs finish). This script collects entries from the ``front.json`` files given, in
order, keeps the last entry per model label, and writes the table, the CaloChallenge placement
and the plot, with a provenance line per entry (which file it came from).

Example (the README's 1-photons front)::

    python bench/front_merge.py --geometry 1-photons --out bench/results/front_1-photons_all \\
        bench/results/front_1-photons.json:cfm,flow bench/results/front_1-photons_vae.json \\
        bench/results/front_1-photons_s5.json

``FILE:MODEL[,MODEL]`` takes only those models from a file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from physgen.calo.front import entry_from_dict, write_front


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+", help="front.json files, optionally FILE:MODEL,MODEL")
    ap.add_argument("--geometry", required=True)
    ap.add_argument("--out", required=True, help="Output prefix: OUT.md, OUT.json, OUT.png")
    args = ap.parse_args(argv)
    entries, origin = {}, {}
    for src in args.sources:
        path, _, only = src.partition(":")
        rec = json.loads(Path(path).read_text())
        if rec["geometry"] != args.geometry:
            raise SystemExit(f"{path}: geometry {rec['geometry']!r}, not {args.geometry!r}")
        keep = set(only.split(",")) if only else None
        for d in rec["entries"]:
            e = entry_from_dict(d)
            if keep is None or e.model in keep:
                entries[e.label] = e
                origin[e.label] = Path(path).name
    chosen = list(entries.values())
    prov = "Entries:\n" + "\n".join(f"- {label}: from {origin[label]}" for label in entries)
    write_front(
        chosen, args.geometry, args.out, {"sources": args.sources, "origin": origin}, prov + "\n"
    )
    text = Path(args.out).with_suffix(".md").read_text()
    print(text.rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
