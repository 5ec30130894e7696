# callto: `make run` starts the server, `make test` runs the whole suite. Both set up what they need,
# on a fresh Debian machine as root, and are quick when everything is already there.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export CALLTO_DATA_DIR ?= $(CURDIR)/data

# Debian packages: what the server needs to run, and what the tests need on top.
DEB_RUN := python3 python3-venv python3-dev gcc nodejs npm rtpengine-daemon
DEB_TEST := sip-tester baresip-core chromium sox iproute2 util-linux xdg-utils desktop-file-utils procps redis-server xvfb xdotool xclip libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xkb1 libxkbcommon-x11-0 libegl1 kamailio fail2ban debootstrap dpkg-dev zstd sipvicious
DEB_BENCH := kamailio

.PHONY: run test lint bench soak fuzz deb deps-run deps-test deps-bench python web extension extension-lint extension-tools clean help

help:
	@echo "make run    - install what is missing, build the web app, start the server"
	@echo "make test   - install what the tests need and run the whole suite"
	@echo "make extension - the browser extension for Chromium and Firefox: extension/dist/ (folders and zips)"
	@echo "make extension-lint - Mozilla's web-ext lint over the Firefox package"
	@echo "make lint   - ruff + mypy (strict)"
	@echo "make bench  - benchmarks (bench/RESULTS.md)"
	@echo "make fuzz   - coverage-guided fuzzing of the SIP parser and endpoint (FUZZ_SECONDS, default 300)"
	@echo "make deb    - the Debian package of the server, dist/callto_<version>_<arch>.deb (docs/operations.md)"

run: deps-run python web
	$(VENV)/bin/callto serve

test: deps-run deps-test python web extension extension-tools
	bash scripts/test.sh

lint: python
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src/callto

bench: deps-run deps-test deps-bench python
	$(PY) bench/run_all.py

# Soak and overload (bench/soak.py): ~15 minutes by default; SOAK_SECONDS=120 for a short run
SOAK_SECONDS ?= 900
soak: deps-run deps-test deps-bench python
	$(PY) bench/soak.py --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

# atheris over callto.sip's parser and endpoint feed; crashes land in tests/sip/fuzz_regressions/
# (replayed by make test). make test itself runs it for 15 s.
FUZZ_SECONDS ?= 300
fuzz: python
	$(PY) tests/sip/sip_fuzz_harness.py -max_total_time=$(FUZZ_SECONDS)

# The Debian package: a self-contained /opt/callto with the web app inside (scripts/build-deb.sh).
deb: deps-run web
	@bash scripts/apt-ensure.sh dpkg-dev
	bash scripts/build-deb.sh

deps-run:
	@bash scripts/apt-ensure.sh $(DEB_RUN)

deps-test:
	@bash scripts/apt-ensure.sh $(DEB_TEST)

deps-bench:
	@bash scripts/apt-ensure.sh $(DEB_BENCH)

# The venv is rebuilt only when pyproject.toml changes.
python: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "python3 is missing"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

web:
	@if [ -x web/build.sh ]; then bash web/build.sh; else echo "web/ not present: serving the API only"; fi

# The browser extension (Manifest V3) from one set of sources: extension/dist/callto (Chromium) and
# extension/dist/callto-firefox (Firefox), each also as a zip (extension/build.sh).
extension:
	bash extension/build.sh

# Mozilla's web-ext, pinned in extension/tools: make test installs it (the extension tests lint the
# Firefox package with it); make extension-lint runs it.
extension-tools:
	sh extension/lint.sh --install-only

extension-lint: extension
	sh extension/lint.sh

clean:
	rm -rf $(VENV) web/node_modules web/dist test-output
