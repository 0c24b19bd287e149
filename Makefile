# Everything a fresh machine needs: `make demo` and `make test` create the venv and install on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
JOBS   ?= 0
# torch before anything that depends on it: this pin takes the CPU wheel from local disk where there is one
TORCH  ?= torch==2.13.0
DEMO_OUT ?= runs/demo

.PHONY: install demo test lint bench clean help

help:
	@echo "make demo   - set up and run the seed study (sweep + report) on the Ethos-U55-256 profile"
	@echo "make test   - set up and run the linter and the test suite (<15 min on 2 cores)"
	@echo "make lint   - ruff on the sources, tests and benchmarks (pinned version; rules in pyproject.toml)"
	@echo "make bench  - run the benchmarks and print figures for benchmarks/RESULTS.md"

# xautodl: NAS-Bench-201's own network definition, the truth tests/train/test_proxies_nb201.py compares
# against; --no-deps because its metadata pins numpy<=1.19.5 and fvcore, which the two modules the test
# imports never use.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '$(TORCH)'
	$(PY) -m pip install -q -e '.[test,train,export]'
	$(PY) -m pip install -q --no-deps 'xautodl==1.0.0'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgenas study examples/seed_head_upsample.yaml --jobs $(JOBS) --out $(DEMO_OUT)
	$(VENV)/bin/edgenas report $(DEMO_OUT)/results.csv --config examples/seed_head_upsample.yaml \
		--lang zh --out $(DEMO_OUT)/zh
	@echo "The study: $(DEMO_OUT)/report.html (Markdown: $(DEMO_OUT)/report.md; Chinese: $(DEMO_OUT)/zh/report.html)"

# pytest exits 5 when it collected no test: treat that as a failure, never as a pass.
test: lint
	bash scripts/system-deps.sh
	$(PY) -m pytest -n 2 -q tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_analytic.py
	$(PY) benchmarks/compile_speed.py 20
	$(PY) benchmarks/compiler_repeat.py
	$(PY) benchmarks/bench_search.py
	$(PY) benchmarks/bench_proxies.py smoke --jobs 2
	$(PY) benchmarks/proxies_nb201.py --sample 300 --jobs 2
	$(PY) benchmarks/bench_supernet.py smoke --jobs 2
	$(PY) benchmarks/bench_export.py --preset smoke

clean:
	rm -rf $(VENV) runs .pytest_cache
