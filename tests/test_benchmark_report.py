"""BENCHMARKS.md keeps what other machines measured when one benchmark's sections are rewritten."""
from benchmarks.run_all import merge_sections

OLD = """# Benchmarks

Machine: elsewhere

## alpha

old alpha

## beta

old beta

## Targets not met

- alpha: a = 1 x (target >= 2)
- beta: b = 1 x (target >= 2)

## How to read these numbers

old notes
"""

NEW = """# Benchmarks

Machine: here

## alpha

new alpha

## gamma

new gamma

## Targets not met

- gamma: g = 3 s (target < 1 s)

## How to read these numbers

new notes
"""


def test_only_the_named_sections_and_their_missed_targets_change():
    page = merge_sections(OLD, NEW, ["alpha", "gamma"])
    assert "Machine: elsewhere" in page and "Machine: here" not in page
    assert "new alpha" in page and "old alpha" not in page
    assert "old beta" in page and "new gamma" in page
    assert page.index("new gamma") < page.index("## Targets not met")
    targets = page.split("## Targets not met")[1].split("##")[0]
    assert "- beta: b" in targets and "- gamma: g" in targets and "- alpha" not in targets
    assert "new notes" in page and "old notes" not in page and page.count("## How to read") == 1


def test_a_rewritten_benchmark_that_now_meets_its_target_leaves_the_list():
    page = merge_sections(OLD, NEW.replace("- gamma: g = 3 s (target < 1 s)", "- none"), ["alpha", "beta"])
    targets = page.split("## Targets not met")[1].split("##")[0]
    assert targets.strip() == "- none"
