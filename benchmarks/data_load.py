"""CIFAR-10 loading: the first call (decodes every JPEG, then writes the cache) and a cached call.

The first load runs against an empty temporary cache, so the shared cache is left alone.
Target: a cached load under 1 s.

    python -m benchmarks.data_load [--quick]     (--quick decodes only the 10k test split)
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

from coursekit import data, settings
from benchmarks.common import invocation, row, save, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    splits = ["test"] if args.quick else ["test", "train"]
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        cfg = dataclasses.replace(settings.load(), cache_dir=Path(cache))
        for split in splits:
            first = seconds(data.cifar10, split, cfg)
            cached = statistics.median(seconds(data.cifar10, split, cfg) for _ in range(3))
            n = len(data.cifar10(split, cfg))
            rows += [row(f"cifar10('{split}') first load ({n} JPEGs decoded)", first, "s"),
                     row(f"cifar10('{split}') cached load", cached, "s", "< 1 s", cached < 1.0)]
    save("data_load", invocation("data_load", argv), rows)


if __name__ == "__main__":
    main()
