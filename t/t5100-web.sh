#!/bin/sh
# bpmaster's HTTP side (config `http ADDR`): Prometheus metrics checked
# against the tree, the token rule off localhost, and the web view in a
# real headless Chromium (one cell per node in its state's colour, updated
# without a reload); structured logs.
. "$(dirname "$0")/lib.sh"

HTTP=127.0.0.1:2224
# The page's colour for each state (README, "Metrics and web view").
colour_of() {
	case $1 in
	up) echo 2ca02c ;; down) echo d62728 ;; boot) echo ffbf00 ;; error) echo 9467bd ;;
	unavailable) echo 7f7f7f ;; reboot) echo 1f77b4 ;; halt) echo 17becf ;; pwroff) echo 000000 ;;
	esac
}

# http_get URL [HEADER: VALUE...]: GET from the master's network namespace.
http_get() { in_master python3 "$TEST_DIRECTORY/web-get.py" "$@"; }
# metric SAMPLE FILE: the value of one sample line (name and labels as
# Prometheus prints them) in a scrape.
metric() { awk -v k="$1" '$1 == k { print $2; found = 1 } END { exit !found }' "$2"; }
# wait_metric SAMPLE VALUE: polls /metrics until SAMPLE has VALUE.
wait_metric() {
	wait_for "http_get http://$HTTP/metrics >scrape && test \"\$(metric '$1' scrape)\" = '$2'" 30
}
# expected_cells: what a row through the cells must show, from the tree:
# one 64-pixel run per node, in its state's colour, by node number.
expected_cells() {
	local n state rest
	while read -r n state rest; do colour_of "$state" | sed 's/$/ 64/' || return 1; done <"$BPROC/status"
}

setup() {
	cluster_up 4 "http $HTTP" || return 1
	# The browser test's own setup: Debian's Chromium.
	command -v chromium >/dev/null 2>&1 ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >"$T/apt.log" 2>&1 ||
		echo "chromium could not be installed: see $T/apt.log"
	if command -v chromium >/dev/null 2>&1; then test_set_prereq CHROMIUM; fi
	return 0
}
test_setup 'a 4-node cluster, bpmaster with http on localhost' setup

test_expect_success 'jobs of every kind: exited, running, failed to start, lost with node 3' '
	bpsh 0 echo hi >out &&
	v=$(cat out) && test "$v" = hi &&
	echo "exec -n /bin/sleep 300" >$BPROC/node/1/ctl &&
	printf "\001\002 not a program" >$T/garbage && chmod 755 $T/garbage &&
	! echo "exec $T/garbage" >$BPROC/node/2/ctl &&
	echo "exec -n /bin/sleep 300" >$BPROC/node/3/ctl &&
	slave_kill 3 &&
	wait_node_state 3 down &&
	wait_for "grep -q \" 3 exited \" $BPROC/proc/*/status" 30
'

test_expect_success '/metrics: each node in exactly the state node/N/status shows, counts as in status' '
	http_get http://$HTTP/metrics >metrics &&
	for n in -1 0 1 2 3; do
		read -r num state rest <$BPROC/node/$n/status &&
		v=$(metric "bproc_node_state{node=\"$n\",state=\"$state\"}" metrics) &&
		test "$v" = 1 &&
		ones=$(grep -c "^bproc_node_state{node=\"$n\",state=\"[a-z]*\"} 1$" metrics) &&
		test "$ones" = 1 || return 1
	done &&
	for s in up down error; do
		want=$(awk -v s=$s "\$2 == s" $BPROC/status | wc -l) &&
		v=$(metric "bproc_nodes{state=\"$s\"}" metrics) &&
		test "$v" = "$want" || return 1
	done &&
	v=$(metric "bproc_nodes{state=\"down\"}" metrics) && test "$v" = 1
'

test_expect_success '/metrics: every metric has HELP text and a TYPE' '
	http_get http://$HTTP/metrics >metrics &&
	grep "^bproc_" metrics | sed "s/[{ ].*//" | sort -u >names &&
	v=$(wc -l <names) && test "$v" -ge 11 &&
	while read -r name; do
		base=$name &&
		grep -q "^# HELP $base [A-Za-z0-9]" metrics &&
		grep -q "^# TYPE $base " metrics || { echo "no HELP/TYPE for $name"; return 1; }
	done <names
'

test_expect_success '/metrics: processes by state and by user, as in proc/*/status' '
	http_get http://$HTTP/metrics >metrics &&
	cat $BPROC/proc/*/status >procs &&
	for s in starting running stopped exited; do
		want=$(awk -v s=$s "\$3 == s" procs | wc -l) &&
		v=$(metric "bproc_processes{state=\"$s\"}" metrics) &&
		test "$v" = "$want" || return 1
	done &&
	v=$(metric "bproc_processes{state=\"running\"}" metrics) && test "$v" = 1 &&
	live=$(awk "\$3 != \"exited\" && \$4 == 0" procs | wc -l) &&
	v=$(metric "bproc_user_processes{user=\"root\"}" metrics) && test "$v" = "$live"
'

test_expect_success '/metrics: job events per node, bytes streamed, 9P clients' '
	http_get http://$HTTP/metrics >metrics &&
	for want in "started 0 1" "exited 0 1" "started 1 1" "failed 2 1" "started 2 0" \
		"started 3 1" "lost 3 1" "lost 0 0" "started -1 0"; do
		set -- $want &&
		v=$(metric "bproc_jobs_$1_total{node=\"$2\"}" metrics) &&
		{ test "$v" = "$3" || fail "jobs $1 on node $2: $v, want $3"; } || return 1
	done &&
	v=$(metric "bproc_streamed_bytes_total{stream=\"stdout\"}" metrics) && test "$v" = 3 &&
	slaves=$(awk "\$1 >= 0 && \$2 == \"up\"" $BPROC/status | wc -l) &&
	v=$(metric "bproc_9p_clients{role=\"slave\"}" metrics) && test "$v" = "$slaves"
'

test_expect_success '/metrics: handshakes refused by cause (garbage, a wrong key)' '
	http_get http://$HTTP/metrics >metrics &&
	v=$(metric "bproc_handshakes_refused_total{cause=\"key\"}" metrics) && test "$v" = 0 &&
	in_node 0 bash -c "echo garbage-not-bproc >/dev/tcp/$MASTER_ADDR/$BPROC_PORT" &&
	wait_metric "bproc_handshakes_refused_total{cause=\"greeting\"}" 1 &&
	make_key $T/wrong.key &&
	! in_node 0 env BPROC_MOUNT=/nonexistent BPROC_MASTER=$MASTER_ADDR bpstat -k $T/wrong.key 2>err &&
	wait_metric "bproc_handshakes_refused_total{cause=\"key\"}" 1
'

test_expect_success 'the state view as JSON: compute nodes, processes per node' '
	http_get http://$HTTP/state.json >state &&
	python3 -c "
import json, sys
s = json.load(open(\"state\"))
print(\" \".join(\"%d:%s:%d\" % (n[\"num\"], n[\"state\"], n[\"procs\"]) for n in s[\"nodes\"]))
" >got &&
	echo "0:up:0 1:up:1 2:up:0 3:down:0" >want &&
	test_cmp want got
'

test_expect_success 'bpmaster refuses http off localhost without a token (exit 1, says why)' '
	printf "%s\n" "bprocport 2299" "mount none" "keyfile $KEY" "http $MASTER_ADDR:2225" >$T/remote.conf &&
	rc=0 && in_master bpmaster -d -c $T/remote.conf 2>err || rc=$? &&
	test $rc = 1 &&
	test_grep "httptoken is required" err
'

test_expect_success 'bpmaster fails on a busy http port (exit 1, says why)' '
	printf "%s\n" "bprocport 2299" "mount none" "keyfile $KEY" "http $HTTP" >$T/busy.conf &&
	rc=0 && in_master bpmaster -d -c $T/busy.conf 2>err || rc=$? &&
	test $rc = 1 &&
	test_grep "address already in use" err
'

test_expect_success 'off localhost with a token file: refused without it, served with it (header or query)' '
	head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n" >$T/http.token &&
	chmod 600 $T/http.token &&
	printf "%s\n" "bprocport 2299" "mount none" "keyfile $KEY" "http $MASTER_ADDR:2225" "httptoken $T/http.token" >$T/remote.conf &&
	bg_master $T/remote.log env JOURNAL_STREAM=8:4242 bpmaster -d -c $T/remote.conf &&
	test_when_finished "bg_kill master-env" &&
	url=http://$MASTER_ADDR:2225 &&
	tok=$(cat $T/http.token) &&
	wait_for "in_node 0 python3 $TEST_DIRECTORY/web-get.py $url/metrics 2>&1 | grep -q \"HTTP 401\"" 30 &&
	! in_node 0 python3 $TEST_DIRECTORY/web-get.py $url/metrics "Authorization: Bearer wrong$tok" 2>err &&
	test_grep "HTTP 401" err &&
	! in_node 0 python3 $TEST_DIRECTORY/web-get.py "$url/?token=x$tok" 2>err &&
	test_grep "HTTP 401" err &&
	in_node 0 python3 $TEST_DIRECTORY/web-get.py $url/metrics "Authorization: Bearer $tok" >metrics &&
	test_grep "^bproc_node_state{node=\"-1\",state=\"up\"} 1" metrics &&
	in_node 0 python3 $TEST_DIRECTORY/web-get.py "$url/state.json?token=$tok" >state &&
	test_grep "\"nodes\":\[\]" state
'

# The page in Chromium, kept loaded while a node changes state. The
# expressions are JavaScript run in the page.
JS_CELLS='document.querySelectorAll("#grid .cell").length == 4 && document.querySelector("#grid .cell[data-node=\"3\"]").dataset.state == "down"'
JS_ROW='Math.round(document.querySelector("#grid .cell").getBoundingClientRect().top + 3)'
JS_ERROR='document.querySelector("#grid .cell[data-node=\"1\"]").dataset.state == "error"'
JS_SAME='[window.bprocProbe, document.body.dataset.loads, Number(document.body.dataset.updates) > 1]'

test_expect_success CHROMIUM 'the web view: 4 cells, the down node in its colour; a state change shows without a reload' '
	test_when_finished "echo state up >$BPROC/node/1/ctl" &&
	in_master env CDP_PROFILE=$T/chrome python3 $TEST_DIRECTORY/web-cdp.py \
		open "http://$HTTP/" \
		wait "$JS_CELLS" \
		eval "$JS_ROW" \
		shot $T/before.png \
		eval "window.bprocProbe = \"same page\"" \
		run "echo state error >$BPROC/node/1/ctl" \
		wait "$JS_ERROR" \
		shot $T/after.png \
		eval "$JS_SAME" >cdp.out &&
	y=$(sed -n 1p cdp.out) &&
	python3 $TEST_DIRECTORY/web-png.py $T/before.png $y >before &&
	printf "%s 64\n" 2ca02c 2ca02c 2ca02c d62728 >want &&
	test_cmp want before &&
	python3 $TEST_DIRECTORY/web-png.py $T/after.png $y >after &&
	expected_cells >want &&
	test_cmp want after &&
	grep -q "^9467bd 64$" after &&
	v=$(sed -n 3p cdp.out) && test "$v" = "[\"same page\", \"1\", true]"
'

test_expect_success 'the master logs with levels and fields (node=N), stamped unless under the journal' '
	test_grep "^time=.* level=INFO msg=\"node 3 down: connection closed\" node=3$" $MASTER_LOG &&
	test_grep "level=WARN msg=\"9p: handshake with .*cluster key mismatch" $MASTER_LOG &&
	test_grep "^level=INFO msg=\"http: serving" $T/remote.log &&
	! grep "time=" $T/remote.log
'

test_done
