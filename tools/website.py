"""The course website: a Jupyter Book (1.x) of the executed notebooks, in lecture order.

`make site` executes the notebooks with `make course` (full mode; quick mode with SITE_QUICK=1)
and then runs this script on the executed copies:

    python -m tools.website --executed build/executed-quick --out build/site

The book's landing page maps each of the lecture's questions (in the slides' own words) to the
notebook that answers it, and its parts are the lecture's sections. Every page keeps its notebook's
Colab/Binder launch links (as text: the site loads no image from another host). Exercises show the
student version (release/: no solutions, no hidden tests, no outputs), never the instructor's.
The build is offline: the book's settings turn off everything that would download (execution,
a remote theme or font, intersphinx); see CONFIG.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from coursekit.grading import is_instructor_note
from tools import launch_links

ROOT = Path(__file__).resolve().parent.parent
TITLE = "From AlexNet to transfer learning"

# The lecture's sections (part captions) and, in each, the slides' questions or slide titles,
# verbatim (tests/test_site.py checks them against slides.txt), with the notebooks that answer them.
PARTS = [
    ("Turning Point: AlexNet", [
        ("ImageNet Classification Task:", ["00_setup", "01_alexnet"]),
    ]),
    ("Deep Learnt Features", [
        ("Common Pipeline: Till Then", ["02_learned_features"]),
        ("It's deep if it has more than one stage of non-linear feature transformation", ["02_learned_features"]),
    ]),
    ("Visualizing CNNs", [
        ("How do I interpret the learned filters?", ["03_filters_activations"]),
        ("How do I decide the architecture or improve existing ones?", ["03_filters_activations", "01_alexnet"]),
        ("Early Layers Converge Faster", ["03_filters_activations"]),
        ("What is it that stimulates/excites a neuron?", ["04_what_excites_a_neuron", "05_class_models_saliency"]),
        ("Visualizing the first conv. layer is possible but how about the later layers.",
         ["04_what_excites_a_neuron", "07_inverting_representations"]),
        ("Class Model Visualization", ["05_class_models_saliency"]),
        ("Better Visualizations", ["06_better_visualizations_deepdream"]),
        ("Deep dream", ["06_better_visualizations_deepdream"]),
        ("Inverting Specific Representation", ["07_inverting_representations"]),
    ]),
    ("Fooling CNN's", [
        ("Fooling CNN's", ["08_fooling_cnns"]),
    ]),
    ("Learned Representations", [
        ("CNN Features can be used for wider applications:", ["09_learned_representations"]),
    ]),
    ("Transfer Learning", [
        ("Can we quantify the layer generality/specificity ?", ["10_how_transferable"]),
        ("Where does the transition occur?", ["10_how_transferable"]),
        ("Is the transition sudden or spread over layers?", ["10_how_transferable"]),
        ("New Settings", ["11_transfer_examples"]),
        ("Transfer Learning - examples", ["11_transfer_examples"]),
    ]),
]

CONFIG = f"""\
title: "{TITLE}"
author: the course's authors
only_build_toc_files: true
execute:
  execute_notebooks: "off"   # executed already, by `make course`
html:
  use_repository_button: false
  use_issues_button: false
  use_edit_page_button: false
  use_multitoc_numbering: false
launch_buttons:
  notebook_interface: jupyterlab
  binderhub_url: ""
  colab_url: ""
  thebe: false
sphinx:
  config:
    html_show_copyright: false
    intersphinx_mapping: {{}}
    nb_merge_streams: true
"""


def notebook_names(executed: Path) -> list[str]:
    return [p.stem for p in sorted(executed.glob("[0-9][0-9]_*.ipynb"))]


def part_of(name: str) -> str:
    """The lecture section a notebook belongs to: the part of the first question it answers."""
    return next(caption for caption, questions in PARTS for _, names in questions if name in names)


def toc(names: list[str]) -> str:
    lines, current = ["format: jb-book", "root: intro", "parts:"], None
    for name in names:
        if part_of(name) != current:
            current = part_of(name)
            lines += [f'  - caption: "{current}"', "    chapters:"]
        lines.append(f"      - file: {name}")
    return "\n".join(lines) + "\n"


def landing_page(names: list[str]) -> str:
    out = [f"# {TITLE}", "",
           "The notebooks of the lecture *Turning Point: AlexNet*, executed, in lecture order. Each one runs "
           "in your browser from its Colab or Binder link, or on your machine (see the README).", "",
           "## The lecture's questions, and where each is answered", ""]
    for caption, questions in PARTS:
        out += [f"### {caption}", ""]
        for question, answered_in in questions:
            links = ", ".join(f"{{doc}}`{name}`" for name in answered_in if name in names)
            out.append(f"- *{question}* {links}")
        out.append("")
    out += ["## Launch a notebook", "", "| notebook | launch |", "| --- | --- |"]
    out += [f"| {{doc}}`{name}` | {launch_links.text_links(name + '.ipynb')} |" for name in names]
    return "\n".join(out) + "\n"


def site_notebook(executed: Path, release: Path):
    """The executed notebook as the site shows it: launch links as text, and its exercises as
    students get them (the release's cells, matched by nbgrader's grade_id, without outputs); no
    instructor notes."""
    nb = nbformat.read(executed, as_version=4)
    name = executed.name
    nb.cells[0].source = nb.cells[0].source.replace(launch_links.badges(name), launch_links.text_links(name))
    nb.cells = [c for c in nb.cells if not is_instructor_note(c)]   # our development numbers
    student = {}
    if (release / name).is_file():
        student = {c.metadata["nbgrader"].get("grade_id"): c.source
                   for c in nbformat.read(release / name, as_version=4).cells if "nbgrader" in c.metadata}
    for cell in nb.cells:
        grading = cell.metadata.get("nbgrader")
        if grading and (grading.get("solution") or grading.get("grade")):   # code, and written answers
            missing = "(the exercise: see the student notebook)"
            cell.source = student.get(grading.get("grade_id"), f"# {missing}" if cell.cell_type == "code" else missing)
        if grading and cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def assemble(executed: Path, source: Path, release: Path) -> list[str]:
    """Write the book's sources (config, table of contents, landing page, notebooks) into `source`."""
    names = notebook_names(executed)
    if not names:
        raise SystemExit(f"no executed notebooks in {executed}: run `make course` (or `make site`) first")
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    (source / "_config.yml").write_text(CONFIG)
    (source / "_toc.yml").write_text(toc(names))
    (source / "intro.md").write_text(landing_page(names))
    for name in names:
        nbformat.write(site_notebook(executed / f"{name}.ipynb", release), source / f"{name}.ipynb")
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executed", type=Path, required=True, help="the executed notebooks (make course's output)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="default: build/site")
    parser.add_argument("--release", type=Path, default=ROOT / "release", help="the student notebooks")
    args = parser.parse_args(argv)
    names = assemble(args.executed, args.out / "source", args.release)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jupyter_book), "build", "--quiet", "-W", "--keep-going", "--path-output", str(args.out), str(args.out / "source")],
                   check=True)
    print(f"site: {len(names)} notebooks, open {args.out / '_build' / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
