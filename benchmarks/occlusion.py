"""Occlusion sensitivity: coursekit.attribution.occlusion (batched) vs a bare hand-written batched
loop (target overhead <= 10%) and vs the same call one occluded image at a time (batch_size=1).

MiniAlexNet width 0.5 on a 32x32 image, an 8x8 grey square at stride 4 (49 positions).

    python -m benchmarks.occlusion [--quick] [--rounds 5]
"""
from __future__ import annotations

import argparse

import torch

from coursekit import attribution, models, settings
from benchmarks.common import invocation, interleaved, row, save

SIZE, STRIDE, FILL = 8, 4, 0.5


@torch.no_grad()
def bare_occlusion(model, x, label, batch_size=64):
    """The loop a student writes: every occluded copy, in batches, p(label) for each."""
    side = x.shape[-1]
    corners = [(t, l) for t in range(0, side - SIZE + 1, STRIDE) for l in range(0, side - SIZE + 1, STRIDE)]
    probs = []
    for i in range(0, len(corners), batch_size):
        batch = x.repeat(len(corners[i:i + batch_size]), 1, 1, 1)
        for b, (t, l) in enumerate(corners[i:i + batch_size]):
            batch[b, :, t:t + SIZE, l:l + SIZE] = FILL
        probs.append(model(batch).softmax(1)[:, label])
    return torch.cat(probs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    device = settings.load().device
    torch.manual_seed(0)
    model = models.mini_alexnet(width=0.5).to(device).eval()
    x = torch.rand(1, 3, 32, 32, device=device)
    ours = attribution.occlusion(model, x, 3, SIZE, STRIDE, FILL).prob.flatten()
    same = torch.allclose(ours, bare_occlusion(model, x, 3).cpu(), atol=1e-5)
    median = interleaved({
        "coursekit batched": lambda: attribution.occlusion(model, x, 3, SIZE, STRIDE, FILL),
        "bare batched": lambda: bare_occlusion(model, x, 3),
        "coursekit per image": lambda: attribution.occlusion(model, x, 3, SIZE, STRIDE, FILL, batch_size=1),
    }, rounds)
    overhead = median["coursekit batched"] / median["bare batched"]
    rows = [row(f"{name}: one occlusion map", s * 1e3, "ms") for name, s in median.items()]
    rows += [row("occlusion coursekit / bare loop", overhead, "x", "<= 1.10", overhead <= 1.10,
                 "same map" if same else "MAPS DIFFER"),
             row("occlusion per image / batched", median["coursekit per image"] / median["coursekit batched"], "x",
                 note="speed-up from one batch of 49 occluded copies")]
    save("occlusion", invocation("occlusion", argv), rows, same=same)


if __name__ == "__main__":
    main()
