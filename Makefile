# streamer — common tasks. `make test` is what CI runs.
GO          ?= go
GOTESTFLAGS ?= -race -timeout 25m

.PHONY: test test-go test-deploy bench bench-all bench-smoke deploy lint tools build clean lambdas

## test: lint, run every benchmark once (so none rots), then install test tools
## if missing, start dynalite and run every test suite
test: lint bench-smoke
	scripts/with-dynalite.sh $(MAKE) --no-print-directory test-go

## bench-smoke: each benchmark once, so none rots; figures are printed, never
## asserted (the 100,000-client run is scaled down to 2,000 here)
bench-smoke:
	STREAMER_BENCH_CLIENTS=2000 $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 15m ./...

## bench: the fan-out yardstick, 3 runs each: 2,000 real clients reached by
## `streamer broadcast --tenant` and `streamer conn prune` at 0 ms and 20 ms
## per @connections request and throttled at 400/s, beside a 10-goroutine SDK
## loop and the ideal measured in the same run; the Manager's hot path
## against the SDK's own call
bench:
	$(GO) test -run '^$$' -bench 'BroadcastCLI|Prune|HotPath' -benchtime 3x -timeout 30m ./tests/integration/ ./pkg/connection/

## bench-all: every benchmark with enough iterations to read the figures
## (BenchmarkIdle100k holds 100,000 clients: STREAMER_BENCH_CLIENTS scales it)
bench-all:
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./...

test-go:
	$(GO) test $(GOTESTFLAGS) ./... && $(MAKE) --no-print-directory test-deploy

## test-deploy: vet and test the Pulumi program under mocks (its own module,
## deployment/pulumi; no pulumi CLI or AWS needed). No -race: compiling the
## pulumi-aws SDK with the race detector costs minutes; the program adds no concurrency of its own.
test-deploy:
	cd deployment/pulumi && $(GO) vet ./... && $(GO) test -count=1 -timeout 20m ./...

## deploy: build the Lambda zips and `pulumi up` a stack: make deploy STACK=dev
deploy:
	scripts/deploy.sh $(STACK)

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

tools:
	scripts/tools.sh

build:
	$(GO) build -o bin/streamer .

## lambdas: Lambda bootstrap zips in dist/ (ARCH=amd64 for x86_64)
lambdas:
	scripts/build-lambdas.sh --arch $(or $(ARCH),arm64) --out dist

clean:
	rm -rf bin dist
