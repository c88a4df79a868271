"""Notebook 04's occlusion statistic on the backbone and untrained copies, for several draws of
held-out images and placements, on plain canvases and on other-class contexts, to a JSON file.

One-off measurement behind 04's instructor note (threshold chosen, then confirmed out of sample):
    COURSEKIT_QUICK=1 python tools/measure_occlusion.py OUT.json 0,1,2 [COPIES [CONTEXTS [CHOICE [N_HELD [KEEP [STRIDE_DIV]]]]]]
Per network: the mean over the canvases it classifies correctly (the first `occlusion_images`) of
the share of the positive drop of p(true class) that falls inside the object's box.
"""
import json
import sys
from pathlib import Path

import torch

import coursekit
from coursekit import attribution, backbones, data, settings


def shares(model, x, y, boxes, keep, size, stride, side, choice="correct"):
    """(len(chosen),) share of each chosen canvas's positive drop inside its box, and the choice:
    'correct': the first `keep` canvases the model classifies correctly; 'surest': the `keep`
    canvases with the highest p(true class)."""
    with torch.no_grad():
        probs = model(x).softmax(1)
    right, _ = backbones.classified_correctly(probs, y)
    if choice == "correct":
        chosen = right[:keep].tolist()
    else:
        chosen = probs.gather(1, y[:, None])[:, 0].argsort(descending=True)[:keep].tolist()
    drops = []
    for i in chosen:
        r = attribution.occlusion(model, x[[i]], int(y[i]), size, stride)
        drops.append(r.base_prob - r.pixel_map(side, side))
    drops = torch.stack(drops)
    return attribution.share_inside(drops.clamp_min(0), boxes[chosen]), len(right), chosen


def main(out: str, seeds: str, copies: str = "10", contexts: str = "plain,other-class", choice: str = "correct",
         n_held: str = "", keep: str = "", stride_div: str = "8") -> None:
    cfg = settings.current()
    coursekit.setup()  # seeds torch as a notebook's first cell does, so a random backbone is the notebook's draw
    bb = backbones.backbone(progress=False)
    side = bb.input_size
    size, stride = side // 4, side // int(stride_div)
    keep = int(keep) if keep else cfg.pick(**bb.budget["occlusion_images"])
    rows = []
    for seed in map(int, seeds.split(",")):
        held = backbones.held_out_images(bb, n=int(n_held) if n_held else cfg.pick(quick=100, full=500), seed=seed)
        partners = data.other_class_partners(held.labels, seed=seed)
        for context in contexts.split(","):
            bg = held.images[partners] if context == "other-class" else None
            canvas = data.pasted_objects(held, bb.mean, seed=seed, backgrounds=bg)
            x, y = canvas.images.floats(cfg.device), canvas.images.labels.to(cfg.device)
            boxes = canvas.masks()
            area = canvas.side ** 2 / side ** 2
            nets = [("trained", bb.model)] + [(f"untrained{k}", m) for k, m in
                                               enumerate(bb.untrained_copies(int(copies), seed=seed + 1))]
            for name, model in nets:
                s, n_right, chosen = shares(model, x, y, boxes, keep, size, stride, side, choice)
                row = {"seed": seed, "context": context, "choice": choice, "n_held": len(held), "net": name, "n_right": n_right, "n": len(chosen),
                       "area": area, "share_mean": float(s.mean()), "share_median": float(s.median()),
                       "above_area": float((s > area).float().mean())}
                rows.append(row)
                print(json.dumps(row), flush=True)
                Path(out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
