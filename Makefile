# dynaguard — the two commands are `make run` and `make test`.
#
# make test   starts one shared DynamoDB Local (unless DYNAMODB_ENDPOINT is set), runs go vet and every
#             test with -race against it, and stops it again, whether the tests pass or not.
# make run    starts DynamoDB Local on 127.0.0.1:8000 and the example app on http://127.0.0.1:8080 (-dev).
# make bench  runs the benchmarks and writes docs/BENCHMARKS.md.

GO        ?= go
DDB_LOCAL := scripts/dynamodb-local
TEST_FLAGS ?= -race -count=1 -timeout 25m
PKGS      ?= ./...

.PHONY: all test test-go run bench bench-go vet fmt ddb-start ddb-stop ddb-status tools

all: test

test:
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

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

run:
	@$(DDB_LOCAL) exec --port $${DYNAMODB_LOCAL_PORT:-8000} -- $(GO) run ./example -dev $(ARGS)

bench:
ifdef DYNAMODB_ENDPOINT
	@$(MAKE) --no-print-directory bench-go
else
	@$(DDB_LOCAL) exec -- $(MAKE) --no-print-directory bench-go
endif

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 $(PKGS)

ddb-start:
	@$(DDB_LOCAL) start

ddb-stop:
	@$(DDB_LOCAL) stop

ddb-status:
	@$(DDB_LOCAL) status

tools:
	cd tools && npm ci --no-audit --no-fund
