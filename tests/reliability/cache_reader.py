"""Read a cache file over and over while other processes write it; count what was seen.

    python cache_reader.py PATH STOP_FILE

Until STOP_FILE exists (and once more after): load PATH whenever it exists. Prints
"complete <n> damaged <n>": a damaged read is one that loaded half a file or garbage.
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

from coursekit import cache


def read_once(path: Path) -> str | None:
    if not path.exists():
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = cache.safe_load(path)
    if state is None and not caught:
        return None  # renamed away between exists() and load: nothing was read
    whole = isinstance(state, dict) and {"recipe", "model", "history"} <= state.keys()
    return "complete" if whole else "damaged"


def main(path: Path, stop: Path) -> None:
    seen = {"complete": 0, "damaged": 0}
    while True:
        finished = stop.exists()
        kind = read_once(path)
        if kind:
            seen[kind] += 1
        if finished:
            break
        time.sleep(0.005)
    print("complete", seen["complete"], "damaged", seen["damaged"], flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
