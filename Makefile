# Each target is a thin recipe; see README.md.
PYTHON ?= python3
VENV   ?= .venv
# students work in their own environment: coursekit and JupyterLab, no test or grading extras.
# TORCH_INDEX=https://download.pytorch.org/whl/cpu installs CPU-only torch first (no CUDA libraries)
STUDENT_VENV ?= .venv-student
TORCH_INDEX ?=
PY     := $(VENV)/bin/python
JUPYTER := $(VENV)/bin/jupyter
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
SUBMISSIONS ?= submissions
WORKERS ?= 1

.PHONY: lab instructor course site sitetest wheelcheck test nbval nullruns browser student grade bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "the course needs Python 3.10 or newer"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,grading,browser]'
	touch $@

# jupyter refuses to run as root unless told; containers and CI machines often are root
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

$(STUDENT_VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "the course needs Python 3.10 or newer"'
	test -x $(STUDENT_VENV)/bin/python || $(PYTHON) -m venv $(STUDENT_VENV)
	$(STUDENT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(STUDENT_VENV)/bin/python -m pip install torch torchvision --index-url $(TORCH_INDEX))
	$(STUDENT_VENV)/bin/python -m pip install -e .
	touch $@

# the student path: the student notebooks (release/, committed) copied into my-notebooks/, where a
# notebook already there is the student's own and is never overwritten
lab: $(STUDENT_VENV)/.installed
	$(STUDENT_VENV)/bin/python -m coursekit workspace --release release --into my-notebooks
	$(STUDENT_VENV)/bin/jupyter lab $(ROOT_FLAG) my-notebooks/

# instructors: the notebooks with solutions and hidden tests, and nbgrader's instructor extensions
instructor: $(VENV)/.installed
	$(JUPYTER) lab $(ROOT_FLAG) notebooks/

# unit tests; every notebook once on the real setup, in JupyterLab + Chromium as a student runs it
# (under nbval where there is no Chromium); then the null runs, whose report joins that run's results,
# and six notebooks on the ImageNet path (random-weights AlexNet at 224 px) but their paper checks
# (the six quickest there: tests/paperchecks/test_null_runs.py's IMAGENET_IN_MAKE_TEST says why;
# make nullruns runs all twelve).
# Two workers on two cores: one thread per notebook kernel, as tests/conftest.py gives each unit-test
# worker (more threads only fight). warm first: the networks the notebooks share are trained once with
# both cores, instead of by one worker while the other waits on the cache lock. --dist loadscope keeps
# a module's tests on one worker, so a module-wide fixture (the hostile submissions graded once in
# test_grading_hostile: 87-131 s) is built once, not once per worker
test: $(VENV)/.installed
	$(PY) -m coursekit warm
	$(PY) -m pytest -n 2 --dist loadscope tests --ignore=tests/browser --ignore=tests/paperchecks
	sh tools/install_chromium.sh
	if $(PY) -m tests.browser.chromium; then $(PY) -m pytest -m "not site" tests/browser; else $(NBVAL); fi
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 -m "not costly" tests/paperchecks

# every notebook under nbval, without a browser (each cell must run without an error)
NBVAL = OMP_NUM_THREADS=1 $(PY) -m pytest --nbval-lax --nbval-current-env -n 2 --dist loadscope notebooks/
nbval: $(VENV)/.installed
	$(NBVAL)

# every null run, including those too long for make test, every notebook on the ImageNet path
# (random-weights AlexNet at 224 px) with its paper checks run too (make test's run without them is
# left out: this one runs every cell it runs), and the slow grading tests (each notebook's answer replaced by a
# call of its reference must lose exactly that exercise; 200 submissions graded on a local Dask
# cluster as in one process, 15 minutes): about an hour and a quarter on 2 CPU cores in quick mode
nullruns: $(VENV)/.installed
	COURSEKIT_QUICK=1 $(PY) -m pytest -n 2 tests/paperchecks -k "not test_notebook_runs_on_the_imagenet_path"
	COURSEKIT_QUICK=1 $(PY) -m pytest -m slow tests/test_grading_hostile.py tests/test_grading.py

browser: $(VENV)/.installed
	sh tools/install_chromium.sh
	$(PY) -m pytest -m "not site" tests/browser

# A cell running longer than CELL_TIMEOUT seconds stops the build with an error naming the cell. The
# slowest full-mode cell trains the backbone on a cache miss (12 epochs x 58 s on 2 CPU cores, about
# 700 s: BENCHMARKS.md); without a limit a headless run can wait forever on a kernel that sits idle
# (jupyter/nbclient#312, jupyter/nbconvert#2029). Override: make course CELL_TIMEOUT=3600
CELL_TIMEOUT ?= 1200

# figures go into the executed notebooks whatever MPLBACKEND the shell has (Agg, as in CI, would drop them)
INLINE := module://matplotlib_inline.backend_inline
# COURSE_QUICK=1 executes in quick mode (make site uses it); COURSE_OUT is where the copies go
COURSE_QUICK ?= 0
COURSE_OUT ?= build

course: $(VENV)/.installed
	mkdir -p $(COURSE_OUT)
	COURSEKIT_QUICK=$(COURSE_QUICK) MPLBACKEND=$(INLINE) $(JUPYTER) nbconvert --to notebook --execute --ExecutePreprocessor.timeout=$(CELL_TIMEOUT) \
		--output-dir $(COURSE_OUT) $(NOTEBOOKS)
	$(JUPYTER) nbconvert --to html --output-dir $(COURSE_OUT) $(addprefix $(COURSE_OUT)/,$(notdir $(NOTEBOOKS)))

# the course website (Jupyter Book 1.x, offline build): the notebooks executed by `make course`, in
# full mode, or in quick mode with SITE_QUICK=1; then build/site/_build/html/index.html
SITE_QUICK ?=
SITE_EXECUTED := build/executed-$(if $(SITE_QUICK),quick,full)

site: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[site]'
	$(MAKE) course COURSE_QUICK=$(if $(SITE_QUICK),1,0) COURSE_OUT=$(SITE_EXECUTED)
	$(PY) -m tools.website --executed $(SITE_EXECUTED) --out build/site

# open every page of the built site in Chromium: it renders, and its figures load (seconds)
sitetest: $(VENV)/.installed
	sh tools/install_chromium.sh
	$(PY) -m pytest -m site tests/browser/test_site.py

# the wheel, installed in a fresh venv outside the repository, runs notebooks 00 and 01 in quick mode
wheelcheck: $(VENV)/.installed
	$(PY) tools/wheelcheck.py

# release/ is committed (students need no nbgrader); tests/test_release.py fails when it is stale
student: $(VENV)/.installed
	$(PY) -m coursekit student

grade: $(VENV)/.installed
	$(PY) -m coursekit grade $(SUBMISSIONS) --workers $(WORKERS)

bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks.run_all

clean:
	rm -rf build .pytest_cache
