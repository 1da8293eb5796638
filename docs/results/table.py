#!/usr/bin/env python3
"""Prints the linear-evaluation rows of docs/results.md from the JSON files beside this script
(written by `cvrl probe eval --json`, and supervised.json for the end-to-end rows), and writes
results.json. The first round's files (8x2 clips, 12 epochs) are in v1/ and are not part of this table."""
import json, pathlib

here = pathlib.Path(__file__).parent
tracks = ["motion-only", "scene-and-motion"]
probe_rows = [("cvrl", "CVRL (default recipe: 32 epochs of 4,800 videos, batch 64)"),
              ("random-init", "random initialization (no training)"),
              ("simclr-inflated", "SimCLR-inflated (SimCLR on single frames, 32 epochs; kernels at the centre tap)"),
              ("supervised-inflated", "supervised-inflated (single-frame supervised, inflated the same way)")]
end_to_end_rows = [("single-frame", "single frame, supervised end to end (appearance alone) †"),
                   ("supervised", "supervised end to end on 8×4 clips (upper bound) †")]
summary, lines = [], []
for key, label in probe_rows:
    cells = []
    for t in tracks:
        f = here / f"{key}-{t}.json"
        if f.exists():
            m = json.loads(f.read_text())["metrics"]
            cells.append(f"{100 * m['top1']:.1f} / {100 * m['top5']:.1f}")
            summary.append({"row": key, "track": t, "top1": m["top1"], "top5": m["top5"], "source": f.name})
        else:
            cells.append("not run")
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
runs = json.loads((here / "supervised.json").read_text())["runs"]
for key, label in end_to_end_rows:
    cells = []
    for t in tracks:
        r = [x for x in runs if x["row"] == key and x["track"] == t]
        cells.append(f"{100 * r[0]['heldOutTop1']:.1f} / –" if r else "not run")
        if r:
            summary.append({"row": key, "track": t, "top1": r[0]["heldOutTop1"], "top5": None, "source": "supervised.json"})
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
(here / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
print("\n".join(lines))
