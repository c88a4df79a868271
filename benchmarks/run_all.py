"""`make bench`: run every benchmark within a time budget and write BENCHMARKS.md and bench.png.

Each benchmark runs in its own process (a fresh interpreter, so none inherits another's threads
or caches) and leaves results/<name>.json; optimize_step and attack_step print their ratio, which is
parsed here. A benchmark that outlasts its share of the budget is stopped and reported as such.

    python -m benchmarks.run_all [--quick] [--budget 1680] [--only train_throughput occlusion] [--report]

`--report --only NAMES` rewrites only those benchmarks' sections of BENCHMARKS.md and keeps the rest as
it stands: results/ holds only what this machine measured (a new machine starts with none), and the
page must not lose the numbers measured elsewhere.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS, machine, row, run_with_timeout

ROOT = Path(__file__).resolve().parent.parent
# (name, arguments, share of the budget, arguments in --quick mode); "{share}" becomes its seconds
PLAN = [
    ("data_load", [], 0.05, ["--quick"]),
    ("train_throughput", [], 0.15, ["--quick", "--steps", "3", "--rounds", "2"]),
    ("machine_limit", ["--compile-timeout", "{share}"], 0.11, ["--quick", "--no-compile"]),
    ("occlusion", [], 0.04, ["--quick"]),
    ("optimize_step", ["--steps", "20", "--rounds", "3"], 0.04, ["--steps", "10", "--rounds", "2"]),
    ("attack_step", ["--repeats", "3"], 0.04, ["--batch", "16", "--steps", "5", "--repeats", "2"]),
    ("time_to_accuracy", ["--budget", "{share}"], 0.28, ["--quick"]),
    ("course_walltime", ["--budget", "{share}"], 0.25, ["--budget", "{share}"]),
    ("grading_throughput", [], 0.04, ["--quick"]),
]
RATIO_LINES = {  # scripts that print their ratio instead of writing JSON
    "optimize_step": (r"ratio render/bare: ([0-9.]+)", "optimize.render / bare loop, per step", 1.10),
    "attack_step": (r"ratio coursekit / bare = ([0-9.]+)", "attacks.pgd / bare PGD loop, per step", 1.10),
}


def run_one(name: str, args: list[str], timeout: float) -> dict:
    command = [sys.executable, "-m", f"benchmarks.{name}", *args]
    shown = "python -m benchmarks." + " ".join([name, *args])
    print(f"\n== {shown}  (up to {timeout:.0f} s)", flush=True)
    (RESULTS / f"{name}.json").unlink(missing_ok=True)
    tic = time.perf_counter()
    code, output, err = run_with_timeout(command, timeout, cwd=ROOT)
    if code is None:
        status = f"stopped after {timeout:.0f} s (budget)"
    else:
        status = "ok" if code == 0 else f"exit {code}: " + (err.strip().splitlines() or ["?"])[-1][:160]
    seconds = time.perf_counter() - tic
    print(output.rstrip(), f"\n   [{status}, {seconds:.0f} s]", flush=True)
    record = {"name": name, "command": shown, "rows": [], "status": status, "seconds": seconds}
    result = RESULTS / f"{name}.json"
    if name in RATIO_LINES:
        pattern, measure, target = RATIO_LINES[name]
        found = re.search(pattern, output)
        if found:
            value = float(found.group(1))
            record["rows"] = [row(measure, value, "x", f"<= {target:.2f}", value <= target)]
            record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
            result.write_text(json.dumps(record, indent=1))
    elif result.exists():
        record = {**json.loads(result.read_text()), "command": shown, "status": status, "seconds": seconds}
    return record


def run_all(quick: bool, budget: float, only: list[str] | None) -> list[dict]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + budget
    plan = [step for step in PLAN if not only or step[0] in only]
    records = {name: earlier(name) for name, *_ in PLAN if only and name not in only}
    for index, (name, args, share, quick_args) in enumerate(plan):
        left = deadline - time.monotonic()
        reserved = budget * sum(step[2] for step in plan[index + 1:])  # what later benchmarks are owed
        seconds = left - reserved
        if seconds < 20:
            records[name] = {"name": name, "command": f"python -m benchmarks.{name}", "rows": [],
                             "status": "not run: budget spent"}
            continue
        args = [a.replace("{share}", f"{max(10, seconds * 0.5 if name == 'machine_limit' else seconds - 30):.0f}")
                for a in (quick_args if quick else args)]
        records[name] = run_one(name, args, seconds)
    return [records[name] for name, *_ in PLAN if name in records]


def earlier(name: str) -> dict:
    """The result a previous run left in results/, for benchmarks this run skips (--only)."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return {"name": name, "command": f"python -m benchmarks.{name}", "rows": [], "status": "not run"}
    record = json.loads(path.read_text())
    return {**record, "status": f"from an earlier run, finished {record.get('finished', '?')}: "
                                f"{record.get('status', 'ok')}"}


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _other_machine(ran_on: dict, info: dict) -> str:
    """Where a record was measured on another CPU than the one assembling the page (sessions get
    different machines), say which, with its bf16 flag: training times differ about 1.75x by it."""
    if not ran_on.get("cpu") or (ran_on["cpu"], ran_on.get("bf16")) == (info.get("cpu"), info.get("bf16")):
        return ""
    bf16 = {True: ", bf16 instructions", False: ", no bf16 instructions (fp32 training)"}.get(ran_on.get("bf16"), "")
    return f"; measured on {ran_on['cpu']}{bf16}"


def verdict(met) -> str:
    return "" if met is None else ("met" if met else "**not met**")


def write_markdown(records: list[dict], quick: bool, started: str, seconds: float, report: bool = False,
                   every_machine: bool = False) -> str:
    """BENCHMARKS.md's text for these records; `every_machine` names each record's machine even where
    it is the one running this (for sections merged into a page assembled elsewhere)."""
    info = machine()
    made = (f"Assembled on {started} by `python -m benchmarks.run_all --report` from the results of the "
            "separate runs below, each with its own command, time and load." if report else
            f"Written by `python -m benchmarks.run_all{' --quick' if quick else ''}` (`make bench`) on {started}, "
            f"in {seconds / 60:.1f} minutes.")
    lines = [
        "# Benchmarks", "", made, "",
        f"Machine: {info['cpu']}{', bf16 instructions' if info['bf16'] else ', no bf16 instructions (fp32 training)'}, "
        f"{info['cores']} cores, torch {info['torch']} with {info['torch_threads']} threads; "
        f"1-minute load average at the end: {info['load_average_1min']:.1f} "
        "(this machine is shared: absolute times are inflated by other programs; ratios are measured "
        "in alternating rounds within one process so load hits both sides alike).", "",
        ("GPU: " + info["gpu"]) if info["gpu"] else
        "GPU: none. No GPU machine was available for these measurements, so there are no GPU numbers here. "
        "The CUDA paths (bf16 autocast, channels_last, non_blocking copies) run unchanged when "
        "`coursekit.settings` finds a GPU: run `make bench` there to fill this in.", "",
        "![ratios against their targets](benchmarks/bench.png)", "",
    ]
    for record in records:
        ran_on = record.get("machine", {})
        load = ran_on.get("load_average_1min")
        lines += [f"## {record['name']}", "", f"`{record['command']}` — {record.get('status', '?')}"
                  + (f", {record['seconds']:.0f} s" if "seconds" in record else "")
                  + (f"; load average {load:.0f} on {info['cores']} cores when it finished" if load else "")
                  + _other_machine(ran_on, {} if every_machine else info), ""]
        if record.get("compile_note"):
            lines += [f"torch.compile: {record['compile_note']}", ""]
        if record["rows"]:
            lines += ["| measure | value | unit | target | verdict | note |", "|---|---:|---|---|---|---|"]
            lines += [f"| {r['measure']} | {fmt(r['value'])} | {r['unit']} | {r['target']} | {verdict(r['met'])} "
                      f"| {r.get('note', '')} |" for r in record["rows"]]
            lines.append("")
    missed = [(rec["name"], r) for rec in records for r in rec["rows"] if r["met"] is False]
    lines += ["## Targets not met", ""] + ([f"- {name}: {r['measure']} = {fmt(r['value'])} {r['unit']} "
                                           f"(target {r['target']})" for name, r in missed] or ["- none"])
    lines += ["", limits(records), NOTES]
    return "\n".join(lines) + "\n"


def sections(page: str) -> list[tuple[str, str]]:
    """A page cut at its '## ' headings: (heading, text) pairs, the text before the first as ''."""
    parts = re.split(r"(?m)^(?=## )", page)
    return [(part.splitlines()[0][3:].strip() if part.startswith("## ") else "", part) for part in parts]


def merge_sections(old: str, new: str, names: list[str]) -> str:
    """`old` with the sections of `names` and their lines under 'Targets not met' taken from `new`; a
    section `old` lacks goes in before 'Targets not met'. The notes (NOTES) always come from `new`."""
    fresh, stale = dict(sections(new)), sections(old)
    names = [*names, "How to read these numbers"]
    def ours(line):
        return any(line.startswith(f"- {name}:") for name in names)
    merged = []
    for heading, text in stale:
        if heading == "Targets not met":
            merged += [fresh[n] for n in names if n in fresh and n not in dict(stale)]
            kept = [line for line in text.splitlines()[1:] if line.startswith("- ") and line != "- none" and not ours(line)]
            missed = [line for line in fresh.get(heading, "").splitlines() if ours(line)]
            text = "## Targets not met\n\n" + "\n".join(kept + missed or ["- none"]) + "\n\n"
        merged.append(fresh[heading] if heading in names and heading in fresh else text)
    return "".join(merged)


NOTES = """## How to read these numbers

- Full-mode wall time of the notebooks (what `make course` runs, COURSEKIT_QUICK=0) is not part of
  `make bench`, which must finish in 30 minutes: `python -m benchmarks.course_walltime --full` times
  them one by one, each stopped at 15 minutes, as on a student's first pass in lecture order (only
  the backbone cached; 09 trains the source network 11 reuses, 06 the second network 08 reuses).
  Its rows are course_walltime_full, shown when it has been run; `--only` reruns some notebooks and
  keeps the others' rows, marked "earlier run"; `--keep-going` runs every cell of every notebook
  without the 15-minute stop, so a row gives the real time and names any cell that raised. Full mode
  is sized to fit 15 minutes here; where a paper's own scale costs more (01's race, 10's seeds), the
  notebook names the constants to raise.
- course_walltime_imagenet_full (`--imagenet --full`) times the path online students get, on stand-in
  random weights for AlexNet and ResNet-18 (the real ones cannot be downloaded here): the same sizes
  and loops as with the real weights, except where a cell's work depends on what the network gets
  right (a random network classifies almost nothing, so a selection falls back to all images). Its
  first run (2026-12-02, AMD EPYC with bf16) had 05 at 968 s and 8.5 GB (saliency of 1,000 photos in
  one backward pass) and 06 at 1,382 s (every example class climbed under each prior); they were
  resized (saliency in chunks, `compared_classes`, `judged_classes`, `matched_classes` in
  backbones.IMAGENET_BUDGET) and rerun; 09 and 11 were rerun together (09 then trained the source
  network 11 reuses, which 02 had trained in the first run: 272 s against 149 s). 08's time includes
  training its quick-recipe CIFAR-10 pair (backbones.trainable_pair). On an AMD EPYC without AVX-512
  09 took 559 s: on such a CPU the 550-800 s rows would pass 15 minutes. 00, 01, 03 and 10 are not
  measured on this path yet (their cost is mostly their own CIFAR-10 training, but 03 mines 1,000
  photos at 224 px).
- time_to_accuracy keeps its checkpoints in benchmarks/results/, so repeated `make bench` runs
  continue one full-recipe training until it is complete; each epoch's seconds were measured
  in the run that trained it.
- machine_limit's "1 thread" row runs the same step with torch.set_num_threads(1). When other
  programs keep the cores busy (load average above the core count), two OpenMP threads wait on
  each other at every barrier, and one thread can train faster than two; on a quiet machine two
  threads should win. Compare it with "bf16 autocast channels_last" in the same run.
- The throughput pairs compare like with like: the same model, batch, optimizer and precision
  (fp32) on both sides, augmentation on both sides or on neither.
- Why the targets marked "not met" are missed (read the rows named here):
  - fit / tutorial pipeline: the tutorial's DataLoader costs only "tutorial input pipeline time /
    tutorial step time" of its step; both sides spend the rest in the same convolutions, so no
    input pipeline can make fp32 training 2x faster. bf16 autocast does ("fit as the backbone
    recipe runs it"), and the tutorial could use it too, so that row is not like for like.
  - 80% within 8 minutes and 85% within 15 of training, one recipe (issue 23): the 12-epoch
    recipe passes 80% after 574 s and stops at 81.4%; its 30-epoch schedule reaches 85% after
    1,727 s but 80% only after 1,042 s (both measured 2026-11-25 on a 2-core AMD EPYC with bf16).
    The cause is the machine: "The floor under time to accuracy" puts one epoch at 34 s even at
    100% of the bf16 matmul rate, and steps reach 66% of it (machine_limit); 80% takes this recipe
    10 epochs and 85% about 30. On 2-core CPUs without bf16 instructions every recipe trains in
    fp32 and slower: 57.5 s per epoch is 6.8 batches of 128 per second with bf16; in fp32 an Intel
    Xeon with AVX-512 trained 3.5 per second (2026-12-01) and an AMD EPYC without AVX-512 2.0
    (2026-12-02, the backbone's progress bar), 1.9x and 3.4x slower. Not measured yet as levers:
    label smoothing, an EMA of the weights, test-time flips, wider or narrower networks.
  - `make test` within 30 minutes (issue 23; measured with `bash .ci/run` in a fresh clone, ../shared
    beside it): met only on a CPU with bf16, 29.9 minutes on an AMD EPYC with AVX-512 and bf16
    (2026-12-02, six ImageNet runs); 52 minutes on an Intel Xeon with AVX-512 but no bf16
    (2026-12-01, with all twelve notebooks on the ImageNet path; 34 before they joined), about 103
    projected on an AMD EPYC without AVX-512
    (2026-12-02: each phase 1.8-2.1x as long), so six of the ImageNet runs moved to `make nullruns`
    (README, "Measured here", has the phases). The cause: each notebook runs three times (on the
    real setup in JupyterLab, in its null, on the ImageNet path), one thread per kernel on two
    cores, after the unit tests; the null runs retrain what their null changes (the shuffled-labels
    networks) and the ImageNet runs work at 224 px. Not yet tried: sharing the null run's networks
    across notebooks, smaller ImageNet quick budgets (they set what a student's quick mode computes
    with the real weights, which no test here can see).
  - torch.compile: on this CPU the compiled step is slower than eager (the convolutions already run
    in oneDNN and dominate the step), so it never pays back; coursekit does not compile.
  - final top-1 >= 85%: the full recipe is sized to pass 80% within 10 minutes ("seconds to 80%").
    "The floor under time to accuracy" above shows the 12 epochs already take most of 10 minutes
    at this machine's matmul rate. The same recipe on a 30-epoch one-cycle schedule
    (time_to_accuracy_30ep, `python -m benchmarks.time_to_accuracy --epochs 30 --budget 1800`;
    trained in one run, its table written by a later call that resumed at the end) does reach
    85%, at its last epoch after 29 minutes of training, but passes 80% only after about 17
    minutes: one schedule cannot meet both targets on 2 cores, and the backbone keeps the 12-epoch
    one, so a student's first full-mode notebook waits 12 minutes, not 30.
- grading_throughput's "N Dask workers" rows grade on a Dask LocalCluster, as `coursekit grade
  --workers N` does; the cluster's start (N worker processes, each importing coursekit and starting
  the fork server its grading processes come from) is inside the timed run, as it is for the
  command, so a handful of submissions understates the rate. At cohort size, the slow test
  (`pytest -m slow tests/test_grading.py -k cohort`, in `make nullruns`) graded 200 submissions of
  its synthetic homework in 563 s one at a time and in 304 s on a 2-worker LocalCluster (1.85x;
  21 and 39 submissions per minute), with byte-identical grades.csv and totals.csv, on 2 cores
  shared with other jobs (load average 3.4 when it finished), 2026-11-30. On a small batch the
  cluster's start dominates: 8 submissions of 03 (`--modes exercises --submissions 8 --workers 1
  2`, same afternoon) went at 9.9 per minute one at a time and 8.3 on 2 Dask workers, about 30 s
  of start (the hand-made pool Dask replaced did 2 at a time at 23.6 per minute in the table
  above, run at load 1.5). So `--workers 1` for a few dozen submissions on a 2-core machine;
  Dask for a cohort or for more cores. A remote scheduler: `--scheduler tcp://host:8786`, with
  `--workers` naming its cores for the per-core rate.
- Not measured here: anything on a GPU (no GPU machine was lent to this project's sessions).
"""


def value(records: list[dict], benchmark: str, measure: str):
    for record in records:
        for r in record["rows"] if record["name"] == benchmark else []:
            if r["measure"].startswith(measure):
                return r["value"]
    return None


def limits(records: list[dict]) -> str:
    """What the hardware allows at best, from this run's own numbers: the floor under time to accuracy."""
    step = value(records, "machine_limit", "training step FLOPs (batch 128")
    peak = value(records, "machine_limit", "dense matmul 2048^2, bf16")
    share = value(records, "machine_limit", "share of step time in conv/matmul")
    if not (step and peak and share):
        return ""
    epoch = step * (50_000 / 128)  # GFLOP per epoch of the full recipe
    return (f"## The floor under time to accuracy\n\nOne epoch of the full recipe (50,000 images) is "
            f"{epoch / 1000:.1f} TFLOP (FlopCounterMode). At this run's bf16 matmul rate, {peak:.0f} GFLOP/s, "
            f"a training step running at 100% of the matmul limit would need {epoch / peak:.0f} s per epoch, "
            f"{12 * epoch / peak / 60:.1f} minutes for the 12-epoch recipe. Real training reaches only the "
            f"fraction shown under machine_limit, because only {100 * share:.0f}% of a step's time is in convolutions "
            f"and matmuls; the rest is element-wise work (LRN, ReLU, pooling, the optimizer) that runs at "
            f"memory speed, not matmul speed.\n")


def plot(records: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ratios = [(r["measure"], r["value"], r["target"], r["met"]) for rec in records for r in rec["rows"]
              if r["unit"] == "x" and r["target"] and r["value"] == r["value"]]
    if not ratios:
        return
    figure, ax = plt.subplots(figsize=(8, 0.45 * len(ratios) + 1))
    names = [name for name, *_ in ratios]
    ax.barh(names, [value for _, value, *_ in ratios],
            color=["tab:green" if met else "tab:red" for *_, met in ratios])
    for i, (_, _, target, _) in enumerate(ratios):
        goal = float(re.findall(r"[0-9.]+", target)[0])
        ax.plot([goal, goal], [i - 0.4, i + 0.4], color="black")
    ax.set_xlabel("ratio (black tick: target; green: met)")
    ax.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds, no torch.compile, "
                        "no full-recipe training")
    parser.add_argument("--budget", type=float, default=28 * 60, help="seconds for everything (make bench: < 30 min)")
    parser.add_argument("--only", nargs="*", help="names of benchmarks to run (the others: earlier results)")
    parser.add_argument("--report", action="store_true", help="run nothing: rewrite BENCHMARKS.md from results/")
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    tic = time.perf_counter()
    records = [earlier(name) for name, *_ in PLAN] if args.report else run_all(args.quick, args.budget, args.only)
    # measured apart (too long for make bench): the quick recipe, longer schedules, the notebooks in
    # full mode and on the ImageNet path
    apart = sorted(RESULTS.glob("time_to_accuracy_*.json")) + sorted(RESULTS.glob("course_walltime_*.json"))
    records += [earlier(path.stem) for path in apart if path.exists()]
    page = ROOT / "BENCHMARKS.md"
    partial = bool(args.report and args.only and page.exists())
    text = write_markdown(records, args.quick, started, time.perf_counter() - tic, args.report, partial)
    if partial:  # a benchmark with no result here keeps the section it has
        measured = [name for name in args.only if (RESULTS / f"{name}.json").exists()]
        page.write_text(merge_sections(page.read_text(), text, measured))
        print(f"\nrewrote the sections {', '.join(measured) or '(none: no results/ for them)'} of {page}")
        return
    plot(records, Path(__file__).resolve().parent / "bench.png")
    page.write_text(text)
    print(f"\nwrote {ROOT / 'BENCHMARKS.md'} in {(time.perf_counter() - tic) / 60:.1f} min")


if __name__ == "__main__":
    main()
