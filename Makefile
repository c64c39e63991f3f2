# Two commands on a fresh Debian 12 machine: `make run` and `make test` (README).
BUILD       ?= build
ASAN_BUILD  ?= build-asan
JOBS        ?= 2
BUILD_TYPE  ?= RelWithDebInfo
DATABASE_URL ?= sqlite://./data/orderengine.db
PORT        ?= 8080
ERP_SIM_PORT ?= 8081
# For local use only; set your own in any shared environment.
AUTH_JWT_SECRET ?= dev-only-secret-change-me

ORDERENGINE := $(BUILD)/src/app/orderengine

.PHONY: all bootstrap configure build run test test-fast asan-build lint bench format clean

all: build

bootstrap:
	@scripts/bootstrap

configure: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -Wno-dev > $(BUILD).configure.log 2>&1 \
		|| { cat $(BUILD).configure.log; exit 1; }

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Only the server: a first `make run` on a fresh machine does not wait for the test programs.
run: configure
	@cmake --build $(BUILD) -j $(JOBS) --target orderengine
	@AUTH_JWT_SECRET='$(AUTH_JWT_SECRET)' PORT=$(PORT) ERP_SIM_PORT=$(ERP_SIM_PORT) \
		scripts/demo-banner $(ORDERENGINE)
	@AUTH_JWT_SECRET='$(AUTH_JWT_SECRET)' DATABASE_URL='$(DATABASE_URL)' PORT=$(PORT) \
		ERP_SIM_PORT=$(ERP_SIM_PORT) $(ORDERENGINE) serve --demo

asan-build: bootstrap
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DOE_SANITIZE=ON -Wno-dev \
		> $(ASAN_BUILD).configure.log 2>&1 || { cat $(ASAN_BUILD).configure.log; exit 1; }
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target oe_tests

lint:
	@scripts/check-format
	@scripts/check-boundaries
	@promtool check rules infra/observability/alerts.yml > /dev/null

# Every test: style gates, the full suite against throwaway PostgreSQL 15 and Redis servers,
# then the unit and conformance tests again under ASan + UBSan.
test: build asan-build lint
	@scripts/with-test-services scripts/run-tests $(BUILD) $(ASAN_BUILD)

# The main build's tests only (no sanitizer build), for a quick local loop.
test-fast: build lint
	@scripts/with-test-services scripts/run-tests $(BUILD)

bench: build
	@scripts/with-test-services $(BUILD)/bench/event_store_bench
	@scripts/with-test-services $(BUILD)/bench/commands_bench
	@bench/startup_bench.sh $(ORDERENGINE)
	@scripts/with-test-services bench/http_bench.sh $(ORDERENGINE) 10 16 sqlite
	@scripts/with-test-services bench/http_bench.sh $(ORDERENGINE) 10 16 postgresql
	@scripts/with-test-services bench/read_after_write_bench.sh $(ORDERENGINE) 20 postgresql
	@for backend in sqlite postgresql; do \
		scripts/with-test-services bench/checkout_cpu_bench.sh $(ORDERENGINE) 30 $$backend || exit 1; done
	@bench/erp_bench.sh $(ORDERENGINE) 10 60 3000
	@scripts/with-test-services $(BUILD)/bench/rebuild_bench --backend both --events 1000000
	@for load in 0 30; do for backend in sqlite postgresql; do \
		PACE_MS=$$load scripts/with-test-services bench/rebuild_checkout_bench.sh $(ORDERENGINE) 15 16 $$backend \
		|| exit 1; done; done

format:
	@scripts/check-format --fix

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(BUILD).configure.log $(ASAN_BUILD).configure.log
