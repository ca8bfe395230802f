#!/bin/sh
# t/fuzz.sh (make fuzz): runs every fuzz target in the repository for
# $FUZZTIME (default 60s) each. Targets are found with `go test -list`, so
# new ones join without editing this. A failing input lands in the
# package's testdata/fuzz/FuzzX/, where `go test` (make unit) replays it
# from then on, with the rest of the seed corpus.
#
# The minimizer, which the fuzzer runs on every input that finds new
# coverage, gets $FUZZMINIMIZETIME (default 5s) instead of Go's 60s: it
# costs the square of the input's length, and while it runs nothing else
# is explored (the execs it does are only counted when it ends).
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-5s}
cd "$(dirname "$0")/.." || exit 1
fail=0

# go test runs a seed corpus only when its directory is named after a
# target of its package: a misnamed one would be skipped without a word.
for d in $(find . -path ./.git -prune -o -path '*/testdata/fuzz/*' -type d -print); do
	name=${d##*/} pkgdir=${d%/testdata/fuzz/*}
	if ! grep -q "^func $name(" "$pkgdir"/*_test.go 2>/dev/null; then
		echo "fuzz: $d: $pkgdir has no target $name" >&2
		fail=1
	fi
done

# Only packages whose tests mention a Fuzz function are asked (building a
# test binary to list nothing takes seconds).
pkgs=$($GO list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}} {{.ImportPath}}{{end}}' ./...) || exit 1
n=0
fuzzpkgs=$(echo "$pkgs" | while read -r dir pkg; do
	if grep -qs 'func Fuzz' "$dir"/*_test.go; then echo "$pkg"; fi
done)
for pkg in $fuzzpkgs; do
	targets=$($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz') || continue
	for t in $targets; do
		n=$((n + 1))
		echo "fuzz: $pkg $t for $FUZZTIME"
		$GO test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg" || fail=1
	done
done
echo "fuzz: $n targets, $(test $fail = 0 && echo all passed || echo FAILED)"
exit $fail
