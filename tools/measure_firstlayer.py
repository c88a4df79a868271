"""Notebook 04's section-4.1 numbers for many seeds, real and shuffled-labels, to a JSON file.

One-off measurement behind 04's instructor note (out-of-sample seeds, the shuffled-labels null):
    COURSEKIT_QUICK=1 python tools/measure_firstlayer.py OUT.json real 0,1,2 [LAYER ...]
    COURSEKIT_QUICK=1 python tools/measure_firstlayer.py OUT.json shuffled-labels 0,1,2 [LAYER ...]
[LAYER ...] are FIRST_LAYERS names, or 'KxK stride S' for another first layer on the same body.
'real' trains (and caches) through backbones.trained_cifar10 like the notebook; 'shuffled-labels'
trains the same recipe on CIFAR-10 with permuted labels (data.shuffled_labels), which the course's
null run does not do (there every network keeps its initial weights). Rows already in OUT.json are
kept, so a run can be resumed.
"""
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from coursekit import backbones, data, firstlayer, settings


def main(out: str, kind: str, seeds: str, *layers: str) -> None:
    path = Path(out)
    rows = json.loads(path.read_text()) if path.exists() else []
    done = {(r["kind"], r["first_layer"], r["seed"]) for r in rows}
    cfg = settings.current()
    probe = data.cifar10("test", cfg).subset(total=500, seed=cfg.seed).floats(cfg.device)
    for name in layers or list(firstlayer.FIRST_LAYERS):
        if name not in firstlayer.FIRST_LAYERS:  # another size-matched control, e.g. "11x11 stride 2"
            kernel, stride = int(name.split("x")[0]), int(name.split("stride ")[1].split()[0])
            firstlayer.FIRST_LAYERS[name] = {"conv1": [kernel, stride], "conv2_stride": 2 if stride == 2 else 1}
        for seed in map(int, seeds.split(",")):
            if (kind, name, seed) in done:
                continue
            r = firstlayer.recipe(name, seed, cfg)
            start = time.process_time()
            if kind == "real":
                model, info = backbones.trained_cifar10(r, cfg, progress=False)
                top1 = info["test_top1"]
            else:  # train the recipe on permuted labels, outside the cache
                null_cfg = dataclasses.replace(cfg, null="shuffled-labels")
                with tempfile.TemporaryDirectory() as tmp:
                    state = backbones._train_cifar10(r, Path(tmp), null_cfg, False)
                model = backbones._trained_model(state, r["arch"], 10, cfg)
                top1 = state["test_top1"]
            row = {"kind": kind, "first_layer": name, "seed": seed, "top1": top1,
                   "cpu_s": round(time.process_time() - start, 1), **firstlayer.measure(model, r, probe)}
            rows.append(row)
            path.write_text(json.dumps(rows, indent=1))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
