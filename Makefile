# pyws — set-up, build, test and demo.
#
#   make demo   install everything, then run the group chat demo
#               (examples/chat/app.py) on 127.0.0.1:9527; the seed's echo
#               page is at /echo.html (options: make demo DEMO_ARGS='--port 8000',
#               DEMO_ARGS='--redis redis://127.0.0.1:6379/0')
#   make test   install everything (with Chromium, chromedriver and
#               redis-server for the browser and multi-process tests), build,
#               then run the test suite
#
#   make fuzz       libFuzzer on the C frame and handshake parsers
#                   (FUZZ_SECONDS per target, default 60)
#   make sanitize   the test suite against an ASan+UBSan build of the engine
#   make memcheck   valgrind on an echo session (C engine alone, then Python)
#   make bench      the benchmark suite against the peers (a few minutes;
#                   bench-quick: a smoke run); results in bench/results/
#
# "install" asks apt only for what is missing (as root, or through sudo).

SHELL        := /bin/bash
PYTHON       ?= python3
PIP          ?= $(PYTHON) -m pip
APT_PACKAGES := libwslay-dev zlib1g-dev pkg-config gcc
CHECK_PACKAGES := clang libclang-rt-14-dev valgrind
# The chat's browser tests (headless Chromium through selenium) and its
# multi-process tests (a throw-away redis-server).
TEST_PACKAGES := chromium chromium-driver redis-server openssl
CLANG        ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := frames handshake
# The sans-I/O engine alone (csrc/engine: no Python, no sockets): what the
# fuzz targets and the C memcheck session link.  csrc/io and csrc/binding
# build on it and only go into the extension (setup.py).
ENGINE_DIR   := csrc/engine
ENGINE_SRC   := $(wildcard $(ENGINE_DIR)/*.c)
ENGINE_HDR   := $(wildcard $(ENGINE_DIR)/*.h)
ASAN_LIBS     = $(shell gcc -print-file-name=libasan.so):$(shell gcc -print-file-name=libubsan.so)
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_ARGS    ?=

.NOTPARALLEL:
.PHONY: install apt-deps apt-install check-deps test-deps build test demo clean fuzz sanitize memcheck bench-deps bench bench-quick

install: apt-deps
	$(PIP) install -e '.[test]'

apt-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"

check-deps: install
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(CHECK_PACKAGES)"

test-deps: install
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_PACKAGES)"

apt-install:
	@if dpkg -s $(PACKAGES) >/dev/null 2>&1; then \
		echo "apt packages present: $(PACKAGES)"; \
	else \
		echo "installing apt packages: $(PACKAGES)"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $(PACKAGES); \
	fi

build:
	$(PYTHON) setup.py build_ext --inplace

test: install test-deps build
	$(PYTHON) -m pytest -q

demo: install
	$(PYTHON) examples/chat/app.py $(DEMO_ARGS)

# libFuzzer targets link the engine alone (no Python), with ASan and UBSan.
# The seed corpus is copied so that runs never write into tests/.
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(ENGINE_SRC) $(ENGINE_HDR)
	@mkdir -p build/fuzz
	$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-I$(ENGINE_DIR) $< $(ENGINE_SRC) -lwslay -lz -o $@

fuzz: check-deps $(addprefix build/fuzz/fuzz_,$(FUZZ_TARGETS))
	@set -o pipefail; for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus-$$t && cp tests/fuzz/corpus/$$t/* build/fuzz/corpus-$$t/ && \
		echo "==> fuzz_$$t for $(FUZZ_SECONDS)s" && \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
			-print_final_stats=1 build/fuzz/corpus-$$t 2>&1 | tail -n 12 || exit 1; \
	done

# The whole test suite against the engine built with AddressSanitizer and
# UndefinedBehaviorSanitizer (the runtimes are preloaded, as the Python
# interpreter itself is not instrumented; leak checking is valgrind's job,
# CPython's own allocations at exit would drown it).  The memory-bound
# tests are left out: shadow memory makes RSS meaningless; so are the TLS
# clients against threaded servers (marker tls_clients, see pyproject.toml).
sanitize: check-deps test-deps
	PYWS_SANITIZE=1 $(PYTHON) setup.py build_ext --inplace --force
	LD_PRELOAD="$(ASAN_LIBS)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 PYWS_SANITIZED=1 \
		$(PYTHON) -m pytest -q -p no:cacheprovider -m "not rss and not tls_clients"; \
		status=$$?; $(PYTHON) setup.py build_ext --inplace --force >/dev/null; exit $$status

build/memcheck/echo_session: tests/memcheck/echo_session.c $(ENGINE_SRC) $(ENGINE_HDR)
	@mkdir -p build/memcheck
	gcc -g -O1 -Wall -Wextra -I$(ENGINE_DIR) $< $(ENGINE_SRC) -lwslay -lz -o $@

memcheck: check-deps build build/memcheck/echo_session
	valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=9 build/memcheck/echo_session
	tests/memcheck/run_python_session.sh $(PYTHON)

bench-deps: install
	$(PIP) install -e '.[bench]'

bench: bench-deps build
	$(PYTHON) bench/run.py $(BENCH_ARGS)

bench-quick: bench-deps build
	$(PYTHON) bench/run.py --quick $(BENCH_ARGS)

clean:
	rm -rf build/ dist/ *.egg-info .pytest_cache bench/build bench/results
	rm -f pyws/*.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
