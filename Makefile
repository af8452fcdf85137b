# pyws — set-up, build, test and demo.
#
#   make demo   install everything, then run the echo demo on 127.0.0.1:9527
#               (options: make demo DEMO_ARGS='--port 8000')
#   make test   install everything, build, then run the test suite
#
# "install" asks apt only for what is missing (as root, or through sudo).

PYTHON       ?= python3
PIP          ?= $(PYTHON) -m pip
APT_PACKAGES := libwslay-dev pkg-config gcc
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_ARGS    ?=

.NOTPARALLEL:
.PHONY: install apt-deps build test demo clean

install: apt-deps
	$(PIP) install -e '.[test]'

apt-deps:
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo "apt packages present: $(APT_PACKAGES)"; \
	else \
		echo "installing apt packages: $(APT_PACKAGES)"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PACKAGES); \
	fi

build:
	$(PYTHON) setup.py build_ext --inplace

test: install build
	$(PYTHON) -m pytest -q

demo: install
	$(PYTHON) examples/echo.py $(DEMO_ARGS)

clean:
	rm -rf build/ dist/ *.egg-info .pytest_cache
	rm -f pyws/*.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
