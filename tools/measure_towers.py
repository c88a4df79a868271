"""Measure notebook 03's Figure 3 check outside the notebook: conv1 colourfulness of the two-tower
networks (backbones.towers_recipe) trained on real labels and on shuffled labels, against ten
untrained copies; the numbers behind 03's instructor note, over more seeds than the notebook runs
(the out-of-sample confirmation of the check's tails and bars).

    COURSEKIT_QUICK=1 OMP_NUM_THREADS=1 python tools/measure_towers.py results.json 0,1,2,3,4,5

Appends to results.json (a rerun skips what it holds): "untrained/<k>" (k < 20), "real/<run>" and
"shuffled/<run>", each with the 32 filters' colourfulness, the test top-1 and the seconds it took,
then prints each run's tails (experiments.beyond_untrained) and the bars. Real-label networks are
cached like the notebook's, shuffled-label ones under <cache>/measure-shuffled (each a few
CPU-seconds to a minute in quick mode).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from coursekit import backbones, experiments, hooks
from coursekit import settings as _settings


def conv1_colour(model) -> list[float]:
    return experiments.colourfulness(hooks.get_layer(model, "conv1").weight).tolist()


def main(out: Path, runs: list[int]) -> None:
    results = json.loads(out.read_text()) if out.exists() else {}
    cfg = _settings.load()
    shuffled = dataclasses.replace(cfg, null="shuffled-labels", cache_dir=cfg.cache_dir / "measure-shuffled")
    for k in range(20):
        results.setdefault(f"untrained/{k}", {"c": conv1_colour(backbones.initial_weights(backbones.towers_recipe(k, cfg), 10, cfg))})
    for run in runs:
        recipe = backbones.towers_recipe(run, cfg)
        for kind in ("real", "shuffled"):
            key = f"{kind}/{run}"
            if key in results:
                continue
            start = time.time()
            # shuffled: what the notebook's shuffled-labels null run trains (trains_in_null), cached apart
            model, info = backbones.trained_cifar10(recipe, cfg=cfg if kind == "real" else shuffled, progress=False,
                                                    trains_in_null=True)
            top1 = info["test_top1"]
            results[key] = {"c": conv1_colour(model), "top1": top1, "secs": time.time() - start,
                            "threads": torch.get_num_threads()}
            out.write_text(json.dumps(results))
    untrained = torch.tensor([results[f"untrained/{k}"]["c"] for k in range(10)])  # as the notebook: copies 0-9
    for key in sorted(k for k in results if not k.startswith("untrained")):
        tails = experiments.beyond_untrained(torch.tensor(results[key]["c"]), untrained)
        print(f"{key:12s} top-1 {results[key]['top1']:.3f}  below {tails['below']:.3f}  above {tails['above']:.3f}  "
              f"({results[key]['threads']} threads)")
    print(f"bars (mean + 3 sd of the leave-one-out shares): below {backbones.null_bar(tails['null_below']):.3f}, "
          f"above {backbones.null_bar(tails['null_above']):.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), [int(r) for r in sys.argv[2].split(",")])
