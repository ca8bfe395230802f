#!/bin/sh
# vmadump: dump+restore of processes with 1, 64 and 512 MB of dirty memory,
# streamed through a pipe inside one vmadump process as a migration would
# stream it between nodes, beside this machine's own limits measured in the
# same run: memcpy of the same number of bytes, and a plain read of the same
# bytes out of the process (process_vm_readv). Medians of several runs.
# Targets: 1 MB in at most 5 ms (BProc reported 3 ms migrations in 2002);
# at least 1 GB/s end to end at 512 MB.
set -e
cd "$(dirname "$0")/.."
command -v vmadump >/dev/null || PATH=$(pwd)/bin:$PATH
dir=$(mktemp -d /tmp/bench-vmadump.XXXXXX)
trap 'rm -rf "$dir"' EXIT
gcc -O2 -static -o "$dir/memhog" vmadump/testdata/memhog.c
vmadump bench -prog "$dir/memhog" -sizes "${BENCH_VMADUMP_SIZES:-1,64,512}" -runs "${BENCH_VMADUMP_RUNS:-7}"
