# bproc: build, test, bench, demo. Every target installs what it needs from
# the project's own files (see t/deps.sh), so a fresh machine works.
GO     ?= go
BIN    := $(CURDIR)/bin
# The commands' -V: git's name for the checkout (the build's own VCS
# stamp when this is empty).
VERSION ?= $(shell git describe --always --dirty 2>/dev/null)
export PATH := $(BIN):$(PATH)

# make install: the usual places under PREFIX, configuration under
# SYSCONFDIR (/etc, whatever PREFIX is), everything below DESTDIR.
PREFIX     ?= /usr/local
DESTDIR    ?=
SYSCONFDIR ?= /etc
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
COMPDIR    ?= $(PREFIX)/share/bash-completion/completions
# The programs: every folder of cmd/ but the shared code.
CMDS       := $(filter-out internal,$(notdir $(wildcard cmd/*)))
BUILD      := $(CURDIR)/build
# Man pages, from Markdown (doc/man/NAME.SECTION.md) by go-md2man, a tool
# pinned in go.mod.
MANSRC     := $(wildcard doc/man/*.md)
MANPAGES   := $(patsubst doc/man/%.md,$(BUILD)/man/%,$(MANSRC))
# The Debian package: nfpm, pinned here, built by the go tool (cached
# after the first time), from the files make install puts under build/deb
# (dist/nfpm.yaml names them so).
NFPM       ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
DEB_ARCH   ?= $(shell $(GO) env GOARCH)
DEB_VERSION ?= $(shell git log -1 --format=0.1~git%cd.%h --date=format:%Y%m%d 2>/dev/null || echo 0.1)

# libbproc: the C library over the tree (libbproc/), C99, no cgo.
INCLUDEDIR ?= $(PREFIX)/include
LIBDIR     ?= $(PREFIX)/lib
LIBBPROC_CFLAGS := -std=c99 -Wall -Wextra -Werror -O2 -g -fPIC -pthread -Ilibbproc/include
LIBBPROC_SRC := $(wildcard libbproc/*.c)
LIBBPROC_OBJ := $(patsubst libbproc/%.c,$(BUILD)/libbproc/%.o,$(LIBBPROC_SRC))
LIBBPROC_HDR := libbproc/include/sys/bproc.h libbproc/internal.h

.PHONY: all build bpsh-c deps test unit e2e fuzz bench bench-scale bench-quick demo vet fmt clean man install deb nfpm libbproc

all: build libbproc

libbproc: $(BUILD)/lib/libbproc.so $(BUILD)/lib/libbproc.a

$(BUILD)/libbproc/%.o: libbproc/%.c $(LIBBPROC_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(LIBBPROC_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/lib/libbproc.so: $(LIBBPROC_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -pthread -Wl,-soname,libbproc.so -o $@ $^ $(LDFLAGS)

$(BUILD)/lib/libbproc.a: $(LIBBPROC_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

# bin/bpsh is the C front (libbproc/bpsh/), which runs the common
# single-node launch itself and execs the Go bpsh, bin/bpsh-go, for the
# rest: beside itself first, then BPSH_GO (where make install puts it).
# It is built with the library's sources, not the .a, so CFLAGS (t7000's
# sanitizers) never change it; BPSH_C and BPSH_CFLAGS make other copies
# (t8500's under ASan). Static: no dynamic loading at each launch (0.3-0.5
# ms of CPU on the test machine).
BPSH_C      ?= $(BIN)/bpsh
BPSH_CFLAGS ?= -O2 -g
BPSH_STATIC ?= -static
BPSH_C_SRC  := $(wildcard libbproc/bpsh/*.c)

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -ldflags '$(if $(VERSION),-X bproc/cmd/internal/cli.version=$(VERSION))' -o $(BIN)/ ./cmd/...
	mv -f $(BIN)/bpsh $(BIN)/bpsh-go
	$(MAKE) -s bpsh-c

bpsh-c:
	$(CC) -std=c99 -Wall -Wextra -Werror -pthread -Ilibbproc/include -Ilibbproc $(BPSH_CFLAGS) \
		-DBPSH_GO='"$(BINDIR)/bpsh-go"' $(BPSH_STATIC) -o $(BPSH_C) $(BPSH_C_SRC) $(LIBBPROC_SRC)

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
test: deps build libbproc vet unit e2e

bench: deps build
	@sh t/bench

# The master at 1000 and 4000 (fake) nodes alone: t/bench-scale.sh, also
# part of make bench.
bench-scale: deps build
	@sh t/bench bench-scale.sh

# The same benchmarks, shorter (under 2 minutes): for a developer's loop.
bench-quick: deps build
	@BENCH_QUICK=1 sh t/bench

demo: deps build
	@sh t/demo.sh

man: $(MANPAGES)

$(BUILD)/man/%: doc/man/%.md
	@mkdir -p $(dir $@)
	$(GO) tool go-md2man -in $< -out $@

# The units run the programs where this install puts them (@BINDIR@); the
# services' settings in /etc/default are the admin's, never overwritten;
# completion is one file with a name per command for bash-completion's
# loader.
# libbproc: its libraries go to $(LIBDIR), its header to
# $(INCLUDEDIR)/sys, at the end of this recipe.
install: build man libbproc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(COMPDIR) $(DESTDIR)$(SYSCONFDIR)/bproc $(DESTDIR)$(SYSCONFDIR)/default
	install -m 0755 $(addprefix $(BIN)/,$(CMDS) bpsh-go) $(DESTDIR)$(BINDIR)/
	for p in $(MANPAGES); do \
		d=$(DESTDIR)$(MANDIR)/man$${p##*.}; \
		install -d $$d && install -m 0644 $$p $$d/ || exit 1; \
	done
	for u in dist/systemd/*.service; do \
		sed 's|@BINDIR@|$(BINDIR)|g' $$u >$(DESTDIR)$(UNITDIR)/$${u##*/} && chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; \
	done
	install -m 0644 dist/config.example $(DESTDIR)$(SYSCONFDIR)/bproc/config.example
	for f in bpslave recvstats; do \
		test -e $(DESTDIR)$(SYSCONFDIR)/default/$$f || install -m 0644 dist/$$f.default $(DESTDIR)$(SYSCONFDIR)/default/$$f || exit 1; \
	done
	install -m 0644 dist/completion/bproc.bash $(DESTDIR)$(COMPDIR)/bproc
	for c in $(CMDS); do ln -sf bproc $(DESTDIR)$(COMPDIR)/$$c || exit 1; done
	install -d $(DESTDIR)$(INCLUDEDIR)/sys $(DESTDIR)$(LIBDIR)
	install -m 0644 libbproc/include/sys/bproc.h $(DESTDIR)$(INCLUDEDIR)/sys/bproc.h
	install -m 0755 $(BUILD)/lib/libbproc.so $(DESTDIR)$(LIBDIR)/libbproc.so
	install -m 0644 $(BUILD)/lib/libbproc.a $(DESTDIR)$(LIBDIR)/libbproc.a

# nfpm itself, built once into the go tool's cache.
nfpm:
	$(NFPM) --version >/dev/null

deb: nfpm
	rm -rf $(BUILD)/deb $(BUILD)/*.deb
	$(MAKE) install DESTDIR=$(BUILD)/deb PREFIX=/usr
	DEB_VERSION=$(DEB_VERSION) DEB_ARCH=$(DEB_ARCH) $(NFPM) package -f dist/nfpm.yaml -p deb -t $(BUILD)/
	@ls $(BUILD)/*.deb

clean:
	rm -rf $(BIN) $(BUILD)
