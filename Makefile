# Two commands do all set-up on a fresh machine: `make train` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train test bench bench-full bench-full-report clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# The default job: a 1-D CNN on MNIST-1D (generated locally, no download).
# Re-running it in the same workdir resumes from the latest checkpoint.
train: $(STAMP)
	$(PY) launch/train.py --config configs/mnist1d_cnn.py --workdir runs/mnist1d_cnn

# pytest exits 5 when it collected no tests: that fails here, it is no pass.
# Two workers: XLA compiles on one core, so one pytest process leaves the
# other core idle for much of the suite. The 25 slowest tests are listed
# at the end (the suite's 10-minute budget on 2 cores).
test: $(STAMP)
	@$(PY) -m pytest -q -n 2 --dist worksteal --durations=25 tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5)" >&2; exit 1; fi; \
	exit $$rc

# The quick CPU suite (under 20 minutes on 2 cores): results, table,
# figures and report in benchmarks/cpu/ (BENCHMARKS.md is the full
# suite's, which carries these results after its own). The report also
# carries the stored results of the suite's longer CPU part
# (configs/bench/cpu.py:more) and of the GPU suite, each with its command.
OTHER_RUNS = benchmarks/cpu_more/results.json,benchmarks/cpu_more_sequences/results.json,benchmarks/gpu/suite_ngram_lm/results.json,benchmarks/gpu/suite_textures_resnet/results.json
bench: $(STAMP)
	$(PY) launch/bench.py --config configs/bench/cpu.py --workdir benchmarks/cpu --report benchmarks/cpu/report.md --also $(OTHER_RUNS)

# The full CPU suite (many hours on 2 cores): six workloads where tuned
# AdamW takes 20-120 s, both AlgoPerf rulesets. It continues from its
# journal (benchmarks/cpu_full/trials.jsonl) when run again; each workload's
# trials all run on one machine (each CPU model continues its own copy of an
# unfinished workload; the first copy finished is reported). Its report goes
# first in BENCHMARKS.md, the quick suite after. `make bench-full-report`
# trains nothing: it writes the report of the workloads the journal holds
# whole (after stopping the suite by hand).
BENCH_FULL = $(PY) launch/bench.py --config configs/bench/cpu.py:full --workdir benchmarks/cpu_full --report BENCHMARKS.md --also benchmarks/cpu/results.json,$(OTHER_RUNS)
bench-full: $(STAMP)
	$(BENCH_FULL)

bench-full-report: $(STAMP)
	$(BENCH_FULL) --replay_only

clean:
	rm -rf runs
