# bproc: build, test, bench, demo. Every target installs what it needs from
# the project's own files (see t/deps.sh), so a fresh machine works.
GO     ?= go
BIN    := $(CURDIR)/bin
# The commands' -V: git's name for the checkout (the build's own VCS
# stamp when this is empty).
VERSION ?= $(shell git describe --always --dirty 2>/dev/null)
export PATH := $(BIN):$(PATH)

.PHONY: all build deps test unit e2e fuzz bench demo vet fmt clean

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -ldflags '$(if $(VERSION),-X bproc/cmd/internal/cli.version=$(VERSION))' -o $(BIN)/ ./cmd/...

deps:
	@sh t/deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

unit: build
	$(GO) test -count=1 ./...

e2e: build
	@sh t/run

# Every fuzz target in the repo, FUZZTIME (default 60s) each (t/fuzz.sh).
# make unit already replays each target's seeds and testdata/fuzz corpus.
FUZZTIME ?= 60s
fuzz:
	@FUZZTIME=$(FUZZTIME) GO=$(GO) sh t/fuzz.sh

# All tests: unit tests of every package, then the end-to-end suite in t/.
test: deps build vet unit e2e

bench: deps build
	@sh t/bench

demo: deps build
	@sh t/demo.sh

clean:
	rm -rf $(BIN)
