"""Ask for a trained CIFAR-10 backbone in its own process, for the concurrency tests.

    python backbone_job.py '<recipe as JSON>'

Prints "resumed-at <epoch>" if this process trains (and from which checkpoint it started), then
"result <trained_now> <sha1 of the weights> <weights finite and accuracy in [0, 1]>", and "warning ..." for any warning (there should be none).
"""
from __future__ import annotations

import hashlib
import json
import sys
import warnings

from coursekit import backbones, train


def report_resumes() -> None:
    real_resume = train._resume

    def resume(*args, **kwargs):
        history, start = real_resume(*args, **kwargs)
        print("resumed-at", start, flush=True)
        return history, start

    train._resume = resume


def main(recipe_json: str) -> None:
    report_resumes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, info = backbones.trained_cifar10(json.loads(recipe_json), progress=False)
    for w in caught:
        print("warning", str(w.message).replace("\n", " "), flush=True)
    state = model.state_dict().values()
    valid = all(v.isfinite().all() for v in state) and 0 <= info["test_top1"] <= 1
    weights = b"".join(v.cpu().numpy().tobytes() for v in state)
    print("result", info["trained_now"], hashlib.sha1(weights).hexdigest(), valid, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
