"""Finding submissions: a folder (one sub-folder per student, or an LMS download of files and
zips) -> which student sent which file, and which homework each file is.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .notebooks import HomeworkError, grade_id

_LMS_NAME = re.compile(r"^(?P<name>.*?[^\d_].*?)_(?:LATE_)?(?P<id>\d+)_")   # Canvas, Moodle


@dataclass
class Submission:
    student: str
    path: Path


def student_from_name(name: str) -> str:
    """'smithjane_12345_67890_03_x.ipynb' (Canvas) or 'Jane Smith_12345_assignsubmission_file_'
    (Moodle) -> 'smithjane_12345' / 'Jane Smith_12345'; any other name -> itself without suffix."""
    match = _LMS_NAME.match(name)
    if match:
        return f"{match['name']}_{match['id']}"
    return Path(name).stem if name.endswith((".ipynb", ".zip")) else name


def folder_student(name: str) -> str:
    """A per-student folder is the student's id as written ('group_7_alice' stays itself); only a
    Moodle folder ('Jane Smith_4242_assignsubmission_file_') is cut by the LMS rule."""
    return student_from_name(name) if "_assignsubmission_" in name else name


def find_submissions(folder, unpack_to) -> list[Submission]:
    """Every .ipynb under `folder`, with its student. Layouts (zip files are unpacked first):
    - folder/<student>/.../*.ipynb          one sub-folder per student, its name as written
                                            (nbgrader's submitted/ too; Moodle's '<name>_<id>_assignsubmission_file_')
    - folder/<name>_<id>_<anything>.ipynb   an LMS download (Canvas, Moodle); student = name_id
    - folder/<name>_<id>_<anything>.zip     one zip per student; any other zip is a whole download
    """
    folder, root = Path(folder), Path(unpack_to)
    if not folder.is_dir():
        raise HomeworkError(f"{folder} is not a folder of submissions; pass the folder that holds "
                            "one sub-folder per student or the files of an LMS download")
    shutil.copytree(folder, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    folders = {p.name: folder_student(p.name) for p in root.iterdir() if p.is_dir()}
    folders.update(_unpack_zips(root))
    found = []
    for path in sorted(root.rglob("*.ipynb")):
        parts = path.relative_to(root).parts
        if "__MACOSX" in parts or ".ipynb_checkpoints" in parts:
            continue
        student = folders[parts[0]] if len(parts) > 1 and parts[0] in folders else student_from_name(parts[0])
        found.append(Submission(student, path))
    _check_collisions(found)
    return found


def _check_collisions(found) -> None:
    """Two students whose feedback files would be one (e.g. 'group 7/alice' and 'group_7_alice')."""
    from .report import _safe_name
    owner = {}
    for sub in found:
        other = owner.setdefault(_safe_name(sub.student).lower(), sub.student)
        if other != sub.student:
            raise HomeworkError(f"the students {other!r} and {sub.student!r} would share one feedback file; "
                                "rename one of their folders")


def _unpack_zips(root: Path) -> dict:
    """Unpack every zip in place: '<name>_<id>_x.zip' -> folder of that student; any other top
    level zip is a whole download whose content joins the top level. Returns {top-level folder
    made from a zip: its student}, the LMS rule applied to the zip's name."""
    made = {}
    for _ in range(3):                                  # a zip of per-student zips, at most
        zips = sorted(root.rglob("*.zip"))
        if not zips:
            return made
        for archive in zips:
            top_level_bundle = archive.parent == root and not _LMS_NAME.match(archive.name)
            target = root if top_level_bundle else archive.with_suffix("")
            before = {p.name for p in root.iterdir() if p.is_dir()}
            _safe_extract(archive, target)
            if archive.parent == root and not top_level_bundle:
                made[target.name] = student_from_name(archive.name)
            elif top_level_bundle:                      # a bundle's folders are students as written
                made.update({p.name: folder_student(p.name) for p in root.iterdir() if p.is_dir() and p.name not in before})
            archive.unlink()
    return made


def _safe_extract(archive: Path, target: Path, max_bytes: int = 500_000_000) -> None:
    """Unpack a zip under `target` only; a broken or oversized zip is skipped with a warning
    (the student then shows up as 'not submitted'), never stopping the batch."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if sum(m.file_size for m in members) > max_bytes:
                print(f"warning: {archive.name} unpacks to more than {max_bytes} bytes; skipped", file=sys.stderr)
                return
            for member in members:
                dest = (target / member.filename).resolve()
                if not dest.is_relative_to(target.resolve()):
                    continue                            # '../x' or '/x': never written outside
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zf.read(member))
                stamp = _zip_time(member)                # "newest" is the date in the zip, not extraction order
                os.utime(dest, (stamp, stamp))
    except zipfile.BadZipFile:
        print(f"warning: {archive.name} is not a valid zip file; skipped", file=sys.stderr)


def _zip_time(member: zipfile.ZipInfo) -> float:
    try:
        return time.mktime((*member.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return 0.0


def match_homework(path: Path, ids: dict) -> str | None:
    """Which homework a file is: by the nbgrader cell ids inside it (so renamed files still match),
    else by its file name containing the notebook name or its 'NN_' number."""
    found = set()
    try:
        found = {grade_id(c) for c in json.loads(path.read_text(encoding="utf-8")).get("cells", [])}
    except Exception:
        pass
    overlap = {name: len(found & known) for name, known in ids.items()}
    best = max(overlap, key=overlap.get, default=None)
    if best is not None and overlap[best] > 0:
        return best
    for name in ids:
        if name in path.name:
            return name
    numbered = [n for n in ids if re.search(rf"(^|[^\d]){n.split('_')[0]}_", path.name)]
    return numbered[0] if len(numbered) == 1 else None


def pick_files(found, ids: dict):
    """(student, notebook) -> the file to grade (the newest when there are several) + notes."""
    chosen, notes = {}, {}
    for sub in found:
        name = match_homework(sub.path, ids)
        if name is None:
            notes.setdefault(sub.student, []).append(
                f"{sub.path.name}: not one of the graded notebooks {sorted(ids)}; not graded")
            continue
        key = (sub.student, name)
        if key in chosen:
            newer = max(chosen[key], sub.path, key=lambda p: (p.stat().st_mtime, p.name))
            older = sub.path if newer == chosen[key] else chosen[key]
            notes.setdefault(sub.student, []).append(
                f"several files for {name}: graded {newer.name}, ignored {older.name}")
            chosen[key] = newer
        else:
            chosen[key] = sub.path
    return chosen, notes
