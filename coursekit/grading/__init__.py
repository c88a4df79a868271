"""Graded homework on top of nbgrader: the student release and the autograder.

One idea per module:
- notebooks.py    reading instructor notebooks: test cells, hidden tests, the Exercises section
- course.py       a throw-away nbgrader course; one notebook's course held as bytes (Homework)
- release.py      make_release(): notebooks/*.ipynb -> release/*.ipynb (the student versions)
- normalize.py    a submission as the student saved it -> a notebook nbgrader can grade, or a reason
- guard.py        the cell run first in every graded kernel: references blocked for student code,
                  comparisons and given inputs put back, exact return types
- autograde.py    grading one submission inside its course; the grades (NotebookGrade, CellGrade)
- isolation.py    each submission in its own process, kernel and course, under time limits
- cluster.py      many submissions at once on Dask distributed (a local cluster or a remote scheduler)
- submissions.py  finding submissions: sub-folders, LMS downloads, zips; which homework a file is
- report.py       grades.csv, totals.csv and feedback/<student>.md + .html
- validation.py   validate(): every exercise proved both ways (solution passes, release fails)
- batch.py        grade(): a folder of submissions -> grades.csv + one feedback file per student

Not a security sandbox: student code runs as your user. Use a container for hostile cohorts. The
guard stops gaming the tests with ordinary Python, not an attack on the grader itself (guard.py).
"""
from .autograde import CellGrade, NotebookGrade
from .batch import grade
from .course import Homework, prepare
from .isolation import grade_submission, grade_submissions
from .notebooks import (MODES, HomeworkError, exercise_section, grade_id, graded_part, homework_notebooks,
                        instructor_notebooks, is_instructor_note, INSTRUCTOR_NOTE, read_notebook, test_cells)
from .release import RELEASE_MARKER, make_release
from .report import feedback_html, feedback_text, write_reports
from .submissions import Submission, find_submissions, match_homework, student_from_name
from .validation import Validation, validate

__all__ = ["CellGrade", "NotebookGrade", "grade", "Homework", "prepare", "grade_submission", "grade_submissions",
           "MODES", "HomeworkError", "exercise_section", "grade_id", "graded_part", "homework_notebooks",
           "instructor_notebooks", "is_instructor_note", "INSTRUCTOR_NOTE", "read_notebook", "test_cells", "RELEASE_MARKER", "make_release",
           "feedback_html", "feedback_text", "write_reports", "Submission", "find_submissions", "match_homework",
           "student_from_name", "Validation", "validate"]
