# QIKI: `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST := $(PY) -m pytest -q
# workers of the first test step (pytest-xdist); 2 = the reference machine's cores
TEST_WORKERS ?= 2
# rounds and load of `make test-loaded`
LOADED_ROUNDS ?= 10
STRESS_CPUS ?= 2

.PHONY: run test test-fast test-realtime test-loaded bench corpus clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/qiki run $(ARGS)

# Two steps (docs/realtime.md): everything but the wall-clock tests on $(TEST_WORKERS)
# workers, then the `realtime` tests serially with the real-time knobs on (SCHED_FIFO 50,
# GC freeze). Both steps always run; the target fails if either failed. Exit 5 (nothing
# selected, e.g. by a PYTEST_ARGS filter) is not a failure.
test: $(STAMP)
	@s1=0; s2=0; \
	echo "== step 1/2: all but realtime, $(TEST_WORKERS) workers"; \
	$(PYTEST) -m "not realtime" -n $(TEST_WORKERS) $(PYTEST_ARGS) || s1=$$?; \
	echo "== step 2/2: realtime, serial, with --rt-knobs"; \
	$(PYTEST) -m realtime -p no:xdist --rt-knobs $(PYTEST_ARGS) || s2=$$?; \
	for s in $$s1 $$s2; do [ $$s -eq 0 ] || [ $$s -eq 5 ] || exit $$s; done

# unit, fsm and contract tests without the wall-clock ones: about a minute
test-fast: $(STAMP)
	$(PYTEST) -m "not realtime" -n $(TEST_WORKERS) tests/unit tests/fsm tests/contract $(PYTEST_ARGS)

# the real-time step of `make test` alone
test-realtime: $(STAMP)
	$(PYTEST) -m realtime -p no:xdist --rt-knobs $(PYTEST_ARGS)

# the real-time step $(LOADED_ROUNDS) times with `stress-ng --cpu $(STRESS_CPUS)` beside it;
# prints the pass count (needs stress-ng: apt-get install stress-ng)
test-loaded: $(STAMP)
	@command -v stress-ng >/dev/null || { echo "stress-ng not installed (apt-get install stress-ng)"; exit 2; }
	@stress-ng --cpu $(STRESS_CPUS) --timeout 3h --quiet & sp=$$!; \
	trap 'kill $$sp 2>/dev/null' EXIT INT TERM; passed=0; \
	for i in $$(seq 1 $(LOADED_ROUNDS)); do \
	  if $(PYTEST) -m realtime -p no:xdist --rt-knobs $(PYTEST_ARGS); then passed=$$((passed + 1)); fi; \
	done; \
	echo "realtime step under stress-ng --cpu $(STRESS_CPUS): $$passed/$(LOADED_ROUNDS) passed"; \
	[ $$passed -eq $(LOADED_ROUNDS) ]

# re-record the replay corpus (tests/replay_corpus/*.mcap) after an intended change of
# behaviour; tests/emulated/test_replay_corpus.py replays it on every `make test`
corpus: $(STAMP)
	$(PY) tests/replay_corpus/record.py

# `make bench`: every bench writes its JSON into $(BENCH_OUT), then one table (issue 16)
BENCH_OUT ?= runs/bench
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]' || echo "bench: daqp not installed; bench/allocation.py skips the daqp comparison"
	mkdir -p $(BENCH_OUT)
	$(PY) bench/allocation.py > $(BENCH_OUT)/allocation.json
	$(PY) bench/codec.py > $(BENCH_OUT)/codec.json
	$(PY) bench/lockstep.py > $(BENCH_OUT)/lockstep.json
	$(PY) bench/tick.py --out $(BENCH_OUT)/tick.json > /dev/null
	if [ -f bench/record.py ]; then $(PY) bench/record.py > $(BENCH_OUT)/record.json; fi
	if [ -f bench/console.py ]; then $(PY) bench/console.py > $(BENCH_OUT)/console.json; fi
	$(PY) bench/report.py $(BENCH_OUT)

clean:
	rm -rf $(VENV) build *.egg-info runs
