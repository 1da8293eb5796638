#!/usr/bin/env python3
"""Writes the lists the results use, from the generator's train.csv files:
DATA/TRACK/probe-train.csv (the first 60 motion-only / 40 scene-and-motion training videos of each
class, in name order), DATA/TRACK/labels-1pct.csv and labels-10pct.csv (the first 1 % and 10 % of each
class's training videos, rounded up: the label-efficiency rows) and DATA/train-both.csv (every training
video of both tracks, for pretraining).
Usage: docs/results/lists.py data/synthmotion"""
import collections, csv, math, sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "data/synthmotion")
per_class = {"motion-only": 60, "scene-and-motion": 40}
both = ["path,label"]
for track, n in per_class.items():
    rows = list(csv.reader(open(root / track / "train.csv")))[1:]
    both += [f"{track}/{p},{label}" for p, label in rows]
    by_label = collections.defaultdict(list)
    for p, label in rows:
        by_label[label].append(p)
    lines = ["path,label"] + [f"{p},{label}" for label in sorted(by_label) for p in sorted(by_label[label])[:n]]
    (root / track / "probe-train.csv").write_text("\n".join(lines) + "\n")
    for percent in (1, 10):
        kept = ["path,label"] + [f"{p},{label}" for label in sorted(by_label)
                                 for p in sorted(by_label[label])[:math.ceil(len(by_label[label]) * percent / 100)]]
        (root / track / f"labels-{percent}pct.csv").write_text("\n".join(kept) + "\n")
(root / "train-both.csv").write_text("\n".join(both) + "\n")
