# Two commands matter: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Cython sources, the files they include, and fastfix/tags.py (setup.py writes _tags.pxd from it).
PYX    := $(shell find fastfix server -name '*.pyx' -o -name '*.pxd') fastfix/tags.py

.PHONY: all setup build test demo bench bench-gate lint clean acceptance
.PHONY: bench-session-gate bench-gateway-gate bench-compare perf-setup bench-report profile bench-smoke
.PHONY: bench-e2e e2e-setup

all: build

# constraints.txt: the versions the suite last passed with, so that a new release of a
# dependency cannot change a fresh set-up (pyproject.toml keeps the supported ranges).
$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,cluster]'
	touch $(STAMP)

setup: $(STAMP)

build: $(STAMP) .build-stamp

.build-stamp: $(PYX) setup.py
	$(BIN)/python setup.py -q build_ext --inplace
	touch .build-stamp

# The cluster failover tests and benchmark (kills under load on a three-node NATS cluster) run on
# their own, in `make cluster-failover`: they fail now and then (docs/cluster.md, guarantees).
test: build
	$(BIN)/python -m pytest -q tests --ignore=tests/cluster/test_cluster_failover.py

.PHONY: cluster-failover
cluster-failover: build
	$(BIN)/python -m pytest -q tests/cluster/test_cluster_failover.py
	$(BIN)/python -m pytest -q -p no:cacheprovider bench/test_cluster_bench.py --benchmark-disable

# Reliability and security (also part of `make test`, with short bounds).
.PHONY: reliability fuzz soak crash
reliability: build
	$(BIN)/python -m pytest -q tests/reliability tests/security

# Long fuzzing runs: atheris on each target (FUZZ_SECONDS each) against the sanitizer build
# (fuzz-build), then more examples for hypothesis (the session state machine included) and
# schemathesis. Findings land in .fuzz/<target>-crash-*.
FUZZ_SECONDS ?= 300
FUZZ_DIR     := .fuzz-build
# clang: AddressSanitizer plus libFuzzer's edge coverage (fuzzer-no-link), which the libFuzzer
# inside atheris reads; its asan_with_fuzzer.so is preloaded so that one ASan runtime serves
# Python and the extensions. (gcc's coverage, trace-pc, is not one libFuzzer reads.)
FUZZ_CC      ?= clang
FUZZ_CFLAGS  ?= -fsanitize=address,fuzzer-no-link -fno-omit-frame-pointer -g -O1
FUZZ_ENV = PYTHONPATH=$(CURDIR)/$(FUZZ_DIR) ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
	LD_PRELOAD="$$($(CURDIR)/$(BIN)/python -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))')"

# The codec, jsonfix and the validator built with those flags into $(FUZZ_DIR), beside a copy
# of the Python package: the normal build stays untouched.
.PHONY: fuzz-build
fuzz-build: $(STAMP)
	command -v $(FUZZ_CC) >/dev/null || .ci/install-debian $(FUZZ_CC)
	rm -rf $(FUZZ_DIR) && mkdir -p $(FUZZ_DIR)
	cp -r fastfix setup.py $(FUZZ_DIR)/
	find $(FUZZ_DIR) \( -name '*.so' -o -name '*.c' \) -delete
	cd $(FUZZ_DIR) && CC=$(FUZZ_CC) CFLAGS="$(FUZZ_CFLAGS)" LDSHARED="$(FUZZ_CC) -shared" \
		LDFLAGS="$(FUZZ_CFLAGS)" ../$(BIN)/python setup.py -q build_ext --inplace
	cd $(FUZZ_DIR) && $(FUZZ_ENV) ../$(BIN)/python -c 'import fastfix._codec as c, fastfix._jsonfix, fastfix._validate; \
		assert "/$(FUZZ_DIR)/" in c.__file__, c.__file__; print("fuzz build:", c.__file__)'

fuzz: build fuzz-build
	mkdir -p .fuzz
	$(BIN)/python tests/reliability/fuzz_targets.py --write-seeds .fuzz/corpus
	for t in tokenizer validate jsonfix; do \
		(cd .fuzz && $(FUZZ_ENV) ../$(BIN)/python ../tests/reliability/fuzz_targets.py $$t \
			-max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$$t- corpus/$$t) || exit 1; done
	FASTFIX_FUZZ_EXAMPLES=20000 FASTFIX_SCHEMATHESIS_EXAMPLES=500 FASTFIX_SCHEMATHESIS_SECONDS=$(FUZZ_SECONDS) \
		FASTFIX_SESSION_FUZZ_EXAMPLES=20000 FASTFIX_SESSION_FUZZ_STEPS=200 \
		$(BIN)/python -m pytest -q -p no:cacheprovider -o timeout=3600 tests/reliability/test_fuzz.py \
		tests/reliability/test_session_fuzz.py

# Ten minutes of steady load through the gateway (RSS, descriptors, error counters flat).
SOAK_SECONDS ?= 600
soak: build
	FASTFIX_SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python -m pytest -q -s -p no:cacheprovider -o timeout=3600 \
		tests/reliability/test_soak.py

# Many kill -9 rounds of the gateway under load.
CRASH_ROUNDS ?= 40
crash: build
	FASTFIX_CRASH_ROUNDS=$(CRASH_ROUNDS) $(BIN)/python -m pytest -q -s -p no:cacheprovider -o timeout=3600 \
		tests/reliability/test_crash_gateway.py

# Many power cuts of the gateway under load (sync = "full"), through the power-cut shim.
POWER_ROUNDS ?= 30
.PHONY: power
power: build
	FASTFIX_POWER_ROUNDS=$(POWER_ROUNDS) FASTFIX_POWER_SECONDS=3 FASTFIX_POWER_SYNC_DELAY_US=3000 \
		$(BIN)/python -m pytest -q -s -p no:cacheprovider -o timeout=3600 tests/reliability/test_power_loss.py

bench: build
	$(BIN)/python -m pytest -q bench --benchmark-only --benchmark-columns=min,median,mean,ops --benchmark-sort=name

# Codec release gate: fastfix vs simplefix ratios measured in one run.
# Every in-process benchmark run once, without timing, so that none of them rots between
# releases (the codec, session and gateway ones run in their gates).
bench-smoke: build
	$(BIN)/python -m pytest -q -p no:cacheprovider bench --benchmark-disable \
		--ignore=bench/test_codec_bench.py --ignore=bench/test_session_bench.py --ignore=bench/test_gateway_bench.py \
		--ignore=bench/test_cluster_bench.py

bench-gate: build
	mkdir -p .benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider bench/test_codec_bench.py --benchmark-only \
		--benchmark-json=.benchmarks/codec.json --benchmark-columns=min,median,mean,ops --benchmark-sort=name \
		--benchmark-storage=file://$(CURDIR)/.benchmarks/history --benchmark-save=codec
	$(BIN)/python bench/gate.py .benchmarks/codec.json --compare

# Session gate: fastfix ping-pong vs a raw asyncio echo of the same bytes, same run (ratios only).
# Saved under .benchmarks/history; the gate prints the change from the previous saved run.
bench-session-gate: build
	$(BIN)/python bench/session_gate.py --run

# Gateway gate: REST->FIX orders/s against a bare granian+msgspec handler, same run, same CPU, each
# at its ceiling (best of 3 short alternating runs at 32 and at 128 connections); fails below 0.22,
# reports the 0.5 target; remeasured once on a miss; under 2 minutes; wrk when installed.
bench-gateway-gate: build
	mkdir -p .benchmarks
	$(BIN)/python bench/gateway_gate.py --json .benchmarks/gateway_gate.json --save

# End to end: POST -> ExecutionReport on the stream and pipelined orders/s of the gateway (FIX to
# the QuickFIX C++ executor), a naive FastAPI + uvicorn + QuickFIX-binding peer to the same executor
# and a bare granian + picows handler, same run; fails when the gateway's p50 is above 8x the bare
# handler's (a regression guard: the 2.0x gate and the targets are reported as met or not). The `e2e` extra (the quickfix binding builds from source for a few minutes) is tried
# first: without it the naive column is skipped, with a line saying so. Only the extra's own
# requirements are installed (read from pyproject.toml), so fastfix is not rebuilt for them.
E2E_STAMP := $(VENV)/.e2e-stamp
$(E2E_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['e2e'], sep='\n')" \
		> $(VENV)/e2e-requirements.txt
	$(BIN)/python -m pip install -q -c constraints.txt -r $(VENV)/e2e-requirements.txt \
		&& touch $(E2E_STAMP) || echo "the e2e extra did not install: the naive peer's column is skipped"

e2e-setup: build $(E2E_STAMP)

bench-e2e: e2e-setup
	mkdir -p .benchmarks
	$(BIN)/python -m bench.e2e --json .benchmarks/e2e.json --save

# The last two saved runs of each gate side by side (for the session, pytest-benchmark's own
# table, then percentiles; for the codec, medians and ratios; for the gateway, its figures).
bench-compare: build
	$(BIN)/python bench/session_gate.py --compare
	$(BIN)/python bench/gate.py --compare
	$(BIN)/python bench/gateway_gate.py --compare
	$(BIN)/python -m bench.e2e --compare

# The performance lab (bench/loadgen): matplotlib, py-spy, hdrhistogram from the `perf` extra.
PERF_STAMP := $(VENV)/.perf-stamp
$(PERF_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,perf,cluster]'
	touch $(PERF_STAMP)

perf-setup: build $(PERF_STAMP)

# Benchmarks + gateway load sweep -> docs/performance.md and docs/img/*.png (about 4 minutes).
bench-report: perf-setup
	$(BIN)/python -m bench.loadgen.page $(REPORT_ARGS)

# Flame graph of the gateway under the mixed load (py-spy), plus `perf stat` counters where perf exists.
PROFILE_ARGS ?=
PROFILE_RATE ?= 2000
profile: perf-setup
	-.ci/install-debian linux-perf   # perf stat of the gateway; the flame graph does not need it
	mkdir -p bench/results
	$(BIN)/python -m bench.loadgen lab bench/loadgen/scenarios/mixed.toml --rate $(PROFILE_RATE) --duration 10 \
		--profile bench/results/gateway-flame.svg --perf-stat bench/results/gateway-perf-stat.txt \
		--out bench/results/profile-run $(if $(PROFILE_ARGS),--py-spy-args="$(PROFILE_ARGS)")

lint: build
	$(BIN)/ruff check fastfix server bench tests

demo: build
	$(BIN)/fastfix demo

clean:
	rm -rf build .build-stamp .fuzz-build fastfix/*.c fastfix/**/*.c fastfix/*.so fastfix/**/*.so server/**/*.c server/**/*.so
