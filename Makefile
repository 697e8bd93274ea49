# Entry points for people and CI. CMake does the actual build.
#
#   make run    install what is missing, build, start `hearth up` with the demo
#   make test   install what is missing, sanitizer and release builds, every
#               test suite (unit, compat, e2e, valgrind memcheck)
#   make build  release build in build/
#   make bench  release build, then the scripts in bench/ (loopback only)
#   make clean  remove both build folders

PYTHON   := /usr/bin/python3
JOBS     := 2
BUILD    := build
ASAN     := build-asan
DATA     := ./hearth-data
DEMO     := ./demo/flying-squid

# UBSan only prints by default; stop at the first report so that a test
# fails where undefined behaviour happens.
SAN_ENV  := UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all deps build build-asan run test test-unit test-compat test-e2e \
        test-memcheck bench clean

all: build

deps:
	@sh scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN) -DHEARTH_SANITIZE=ON
	cmake --build $(ASAN) -j$(JOBS)

run: build
	./$(BUILD)/hearth up --data $(DATA) --demo $(DEMO)

# Every suite runs even when an earlier one fails (-k), and `make test`
# fails when any of them failed.
test: build-asan build
	@$(MAKE) --no-print-directory -k test-unit test-compat test-e2e \
	    test-memcheck

test-unit:
	$(SAN_ENV) ctest --test-dir $(ASAN) --output-on-failure

test-compat:
	$(SAN_ENV) HEARTH_BIN=$(CURDIR)/$(ASAN)/hearth \
	    SIO_ECHO_BIN=$(CURDIR)/$(ASAN)/sio_echo \
	    SIOC_PROBE_BIN=$(CURDIR)/$(ASAN)/sioc_probe \
	    node --test tests/compat/

test-e2e:
	$(SAN_ENV) HEARTH_BIN=$(CURDIR)/$(ASAN)/hearth \
	    $(PYTHON) -m pytest -q tests/e2e

# valgrind cannot run ASan binaries, so memcheck uses the release build.
test-memcheck:
	HEARTH_BIN=$(CURDIR)/$(BUILD)/hearth sh tests/memcheck/run.sh

bench: build
	HEARTH_BIN=$(CURDIR)/$(BUILD)/hearth sh bench/api_throughput.sh
	HEARTH_BIN=$(CURDIR)/$(BUILD)/hearth sh bench/idle_rss.sh
	HEARTH_BIN=$(CURDIR)/$(BUILD)/hearth sh bench/open_latency.sh

clean:
	rm -rf $(BUILD) $(ASAN)
