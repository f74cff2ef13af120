# dynaguard — the two commands are `make run` and `make test`.
#
# make test   checks the module (go mod tidy -diff, gofmt, staticcheck: make hygiene), starts one shared
#             DynamoDB Local (unless DYNAMODB_ENDPOINT is set), runs go vet and every test with -race against
#             it, and stops it again, whether the tests pass or not.
# make run    starts DynamoDB Local on 127.0.0.1:8000 and the example app on http://127.0.0.1:8080 (-dev).
#             Ctrl-C, or SIGINT or SIGTERM to make or to scripts/dynamodb-local, stops both.
# make run-worker  starts DynamoDB Local and the example queue/stream worker, which feeds itself
#             duplicated and replayed events and shows each one taking effect once.
# make bench  runs every benchmark against its own DynamoDB Local and writes docs/BENCHMARKS.md and the
#             charts in docs/bench/ (about 12 minutes on two cores; raw output in docs/bench-raw/).

GO        ?= go
DDB_LOCAL := scripts/dynamodb-local
TEST_FLAGS ?= -race -count=1 -timeout 25m
PKGS      ?= ./...

.PHONY: all test test-go run run-worker bench bench-go vet fmt hygiene tidy-check fmt-check staticcheck ddb-start ddb-stop ddb-status tools

all: test

test: hygiene
ifdef DYNAMODB_ENDPOINT
	@$(MAKE) --no-print-directory test-go
else
	@$(DDB_LOCAL) exec -- $(MAKE) --no-print-directory test-go
endif

test-go: vet
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		command -v google-chrome >/dev/null 2>&1 || [ -n "$${DYNAGUARD_CHROMIUM:-}" ] || \
		echo "!!! WARNING: Chromium not found: the browser test (TestBrowserFlows) will be SKIPPED (apt-get install chromium)" >&2
	$(GO) test $(TEST_FLAGS) $(PKGS)
	@# Allocation tests are built only without -race (the race detector
	@# empties sync.Pools at random), so they get a run of their own.
	$(GO) test -count=1 -run 'Allocations' ./nonce/ ./internal/budget/

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files -co --exclude-standard '*.go')

# hygiene: the module is tidy, formatted and staticcheck-clean; each is a failing step of make test.
# staticcheck is installed from the Go module proxy at a pinned version (v0.8.2 is staticcheck 2026.2.2,
# which supports Go 1.25 and 1.26) into the Go build cache, and keeps its own cache there too, so after
# the first run it re-checks only what changed (under a second on this repository).
STATICCHECK_VERSION ?= v0.8.2
GOCACHE_DIR         := $(shell $(GO) env GOCACHE)
STATICCHECK_DIR     := $(GOCACHE_DIR)/dynaguard-tools/staticcheck-$(STATICCHECK_VERSION)
STATICCHECK         := $(STATICCHECK_DIR)/staticcheck

hygiene: tidy-check fmt-check staticcheck

tidy-check:
	@$(GO) mod tidy -diff >/dev/null 2>&1 || { $(GO) mod tidy -diff; \
		echo "!!! go.mod/go.sum are not tidy (diff above): run go mod tidy" >&2; exit 1; }

fmt-check:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
		if [ -n "$$out" ]; then echo "!!! not gofmt-clean (run make fmt):" >&2; echo "$$out" >&2; exit 1; fi

staticcheck: $(STATICCHECK)
	STATICCHECK_CACHE=$(STATICCHECK_DIR)/cache $(STATICCHECK) ./...

$(STATICCHECK):
	GOBIN=$(STATICCHECK_DIR) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# run: the example app is built first and run as a binary (go run would not pass SIGTERM on to it), and
# the script is exec'd so that make's own SIGTERM reaches it directly.
run:
	@$(GO) build -o bin/dynaguard-example ./example
	@exec $(DDB_LOCAL) exec --port $${DYNAMODB_LOCAL_PORT:-8000} -- bin/dynaguard-example -dev $(ARGS)

run-worker:
	@$(DDB_LOCAL) exec -- $(GO) run ./example/worker $(ARGS)

bench:
ifdef DYNAMODB_ENDPOINT
	@$(MAKE) --no-print-directory bench-go
else
	@$(DDB_LOCAL) exec -- $(MAKE) --no-print-directory bench-go
endif

# bench-go: first the Go benchmarks of every package (median of BENCH_COUNT runs; users' peak-RSS
# benchmark is skipped because section 4 of the report measures the same flood, through the whole stack
# and with latencies), then tools/benchreport, which runs the end-to-end measurements and writes the report.
BENCH_RAW   ?= docs/bench-raw
BENCH_COUNT ?= 5
BENCH_ARGS  ?=
bench-go: SHELL := /bin/bash
bench-go: .SHELLFLAGS := -o pipefail -c
bench-go:
	@mkdir -p $(BENCH_RAW)
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) -skip 'PeakRSS' -timeout 30m $(PKGS) | tee $(BENCH_RAW)/go-bench.txt
	$(GO) run ./tools/benchreport -gobench $(BENCH_RAW)/go-bench.txt -out docs/BENCHMARKS.md -charts docs/bench -raw $(BENCH_RAW) $(BENCH_ARGS)

ddb-start:
	@$(DDB_LOCAL) start

ddb-stop:
	@$(DDB_LOCAL) stop

ddb-status:
	@$(DDB_LOCAL) status

tools:
	cd tools && npm ci --no-audit --no-fund
