# streamer — common tasks. `make test` is what CI runs.
GO          ?= go
GOTESTFLAGS ?= -race -timeout 25m

.PHONY: test test-go lint tools build clean lambdas

## test: install test tools if missing, start dynalite, run every test suite
test: lint
	scripts/with-dynalite.sh $(MAKE) --no-print-directory test-go

test-go:
	$(GO) test $(GOTESTFLAGS) ./...

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
