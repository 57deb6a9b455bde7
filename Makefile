# The two commands of the README, plus lint and bench.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo screenshots test test-unit test-integration lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[drf,local,redis,cloudinary,taggit,async]" --group test --group dev
	touch $(STAMP)

# Run the example site on SQLite with in-process tasks and the offline backend
# (the Cloudinary backend when CLOUDINARY_URL is set).
demo: $(STAMP)
	$(PY) example_project/manage.py demo

# The README's pictures (docs/images/), taken from a freshly seeded demo in
# headless Chromium (Debian packages chromium and chromium-driver).
screenshots: $(STAMP)
	$(PY) example_project/screenshots.py

# pytest's exit 5 (no test collected) fails like any other failure.
test: $(STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; fi; exit $$rc

test-unit: $(STAMP)
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
