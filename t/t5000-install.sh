#!/bin/sh
# Installing bproc as an admin would: make install into a DESTDIR, the man
# pages (they render without warnings and name every option -h lists), the
# example config (every keyword), the systemd units (systemd-analyze verify),
# the Debian package (built, installed into a scratch root, removed), bash
# completion against a real cluster, and bpmaster's sd_notify readiness.
. "$(dirname "$0")/lib.sh"

CMDS="bpsh bprsh bpstat bpctl bpcp beostat vmadump bpmaster bpslave sendstats recvstats"
INST=$T/inst
MAN=$INST/usr/local/share/man

# render PAGE: the page as text, wide, plain ASCII.
render() { LC_ALL=C MANWIDTH=200 man -l "$1" 2>/dev/null | col -b; }

# help_options CMD: every option name CMD -h lists, one a line.
help_options() {
	"$1" -h | awk '/^ +-/ {
		sub(/^ +/, ""); sub(/  .*/, "")
		n = split($0, w, /[ ,]+/)
		for (i = 1; i <= n; i++) if (w[i] ~ /^-/) print w[i]
	}'
}

# complete_words WORD...: what the installed completion offers for the
# command line WORD... (the last word is the one being completed), sorted.
complete_words() {
	bash -c '. "$0" && COMP_WORDS=("$@") && COMP_CWORD=$(($# - 1)) &&
		_bproc "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" &&
		printf "%s\n" "${COMPREPLY[@]}"' \
		"$INST/usr/local/share/bash-completion/completions/bproc" "$@" | sort
}

test_setup 'make install into a DESTDIR' make -s -C "$BPROC_ROOT" install DESTDIR="$INST"

test_expect_success 'make install puts every file in its place' '
	for c in $CMDS; do
		test -x "$INST/usr/local/bin/$c" &&
		test -L "$INST/usr/local/share/bash-completion/completions/$c" || return 1
	done &&
	for p in man1/bpsh.1 man1/bprsh.1 man1/bpstat.1 man1/bpctl.1 man1/bpcp.1 man1/beostat.1 man1/vmadump.1 \
		man8/bpmaster.8 man8/bpslave.8 man8/sendstats.8 man8/recvstats.8 \
		man5/bproc-config.5 man7/bproc.7 man3/bproc.3; do
		test -f "$MAN/$p" || return 1
	done &&
	for u in bpmaster bpslave recvstats; do
		test_grep "^ExecStart=/usr/local/bin/$u " "$INST/usr/local/lib/systemd/system/$u.service" || return 1
	done &&
	test -f "$INST/etc/bproc/config.example" &&
	test -f "$INST/etc/default/bpslave" &&
	test -f "$INST/etc/default/recvstats" &&
	test -f "$INST/usr/local/share/bash-completion/completions/bproc" &&
	test -f "$INST/usr/local/include/sys/bproc.h" &&
	test -f "$INST/usr/local/lib/libbproc.so" &&
	test -f "$INST/usr/local/lib/libbproc.a" &&
	test -x "$INST/usr/local/bin/bpsh-go" &&
	(cd "$INST" && find . ! -type d) >found &&
	sort found >files &&
	n=$(wc -l <files) && test "$n" = 47
'

test_expect_success 'make install again keeps what the admin wrote in /etc/default' '
	echo BPSLAVE_MASTER=10.0.0.1 >"$INST/etc/default/bpslave" &&
	make -s -C "$BPROC_ROOT" install DESTDIR="$INST" &&
	echo BPSLAVE_MASTER=10.0.0.1 >want &&
	test_cmp want "$INST/etc/default/bpslave"
'

test_expect_success 'every man page renders without a warning, and man finds them' '
	n=0 &&
	for p in "$MAN"/man?/*; do
		groff -ww -z -man "$p" 2>err &&
		! test -s err &&
		MANWIDTH=80 man --warnings -l -Tutf8 "$p" >out 2>err &&
		! test -s err &&
		render "$p" >out &&
		test_grep "^NAME" out &&
		n=$((n + 1)) || { echo "$p:"; cat err; return 1; }
	done &&
	test "$n" = 14 &&
	for p in bpsh.1 bpmaster.8 bproc-config.5 bproc.7 bproc.3; do
		w=$(MANPATH=$MAN man -w "${p##*.}" "${p%.*}") &&
		test "$w" = "$MAN/man${p##*.}/$p" || return 1
	done
'

test_expect_success 'every option a command -h lists is in its man page' '
	for c in $CMDS; do
		render "$MAN"/man[18]/$c.[18] >page &&
		test_grep "^NAME" page &&
		help_options $c >opts &&
		test -s opts &&
		while read -r o; do
			grep -qE -- "(^|[^a-zA-Z-])$o([^a-zA-Z-]|$)" page ||
				{ echo "$c: $o is not in its man page"; return 1; }
		done <opts || return 1
	done
'

test_expect_success 'the example config and bproc-config(5) name every keyword bpmaster knows' '
	sed -n "s/^	{\"\([a-z]*\)\", [0-9].*/\1/p" "$BPROC_ROOT/fs/pspace/config.go" >keywords &&
	n=$(wc -l <keywords) && test "$n" -ge 11 &&
	render "$MAN/man5/bproc-config.5" >page &&
	while read -r k; do
		test_grep "^#$k " "$INST/etc/bproc/config.example" &&
		grep -qE "(^ +|, )$k( |,|$)" page || { echo "keyword $k missing"; return 1; }
	done <keywords &&
	! grep -v "^#" "$INST/etc/bproc/config.example" | grep -q .
'

test_expect_success 'the systemd units verify clean (paths into the DESTDIR, man pages found)' '
	mkdir -p units &&
	for u in "$INST"/usr/local/lib/systemd/system/*.service; do
		sed "s|/usr/local/bin/|$INST/usr/local/bin/|g" "$u" >units/${u##*/} || return 1
	done &&
	test_grep "^Type=notify$" units/bpmaster.service &&
	test_grep "^ExecReload=/bin/kill -HUP \$MAINPID$" units/bpmaster.service &&
	test_grep "^Restart=on-failure$" units/bpmaster.service &&
	test_grep "^EnvironmentFile=/etc/default/bpslave$" units/bpslave.service &&
	MANPATH=$MAN systemd-analyze verify units/*.service >out 2>&1 &&
	! test -s out &&
	sed "s/^Type=notify$/Type=notifyy/" units/bpmaster.service >units/broken.service &&
	{ MANPATH=$MAN systemd-analyze verify units/broken.service >out 2>&1 || :; } &&
	test_grep "Failed to parse service type" out
'

test_setup 'a 2-node cluster comes up' cluster_up 2

test_expect_success 'completion: node numbers from the tree, then the commands' '
	complete_words bpsh "" >got &&
	printf "%s\n" -1 0 1 all allnotdown allup master | sort >want &&
	test_cmp want got &&
	complete_words bpsh -p "" >got &&
	test_cmp want got &&
	complete_words bpctl -S "" >got &&
	test_cmp want got &&
	complete_words bpsh 1 hostnam >got &&
	test_grep "^hostname$" got &&
	complete_words bpsh -a hostnam >got &&
	test_grep "^hostname$" got &&
	complete_words bpsh -1 hostnam >got &&
	test_grep "^hostname$" got &&
	complete_words bprsh "" >got &&
	printf "%s\n" 0 1 master node0 node1 | sort >want &&
	test_cmp want got &&
	complete_words bprsh -o BatchMode=yes -p 22 0 hostnam >got &&
	test_grep "^hostname$" got &&
	complete_words bpcp "" >got &&
	test_grep "^0:$" got &&
	test_grep "^-1:$" got &&
	test_grep "^master:$" got
'

test_expect_success 'completion: a new node shows up, options come from -h, states for bpctl -s' '
	net_add_node 2 &&
	slave_start 2 &&
	test_when_finished "slave_kill 2" &&
	wait_nodes_up 3 &&
	complete_words bpstat "" >got &&
	test_grep "^2$" got &&
	complete_words bpsh --se >got &&
	echo --sequential >want &&
	test_cmp want got &&
	complete_words bpstat - >got &&
	help_options bpstat | sort >want &&
	test_cmp want got &&
	complete_words bpctl -S 1 -s "" >got &&
	printf "%s\n" down error halt pwroff reboot unavailable up >want &&
	test_cmp want got &&
	complete_words vmadump "" >got &&
	test_grep "^restore$" got &&
	complete_words beostat -f me >got &&
	echo meminfo >want &&
	test_cmp want got
'

# A stand-in for systemd: records each notification and, at that moment,
# whether the tree is mounted; ends after STOPPING=1.
cat >"$T/notify.py" <<'EOF'
import os, socket, sys
sock, mnt, out = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock)
s.settimeout(60)
with open(out, "a", buffering=1) as f:
    while True:
        msg = s.recv(4096).decode()
        mounted = os.path.ismount(mnt) and os.path.exists(os.path.join(mnt, "status"))
        for line in msg.split("\n"):
            if line:
                f.write("%s mounted=%s\n" % (line, "yes" if mounted else "no"))
        if "STOPPING=1" in msg:
            break
EOF

test_expect_success 'bpmaster -d under NOTIFY_SOCKET: READY=1 only once the tree is mounted; RELOADING=1 and READY=1 for SIGHUP; STOPPING=1' '
	mkdir -p m2 &&
	printf "%s\n" "bprocport 2224" "mount $T/m2" "keyfile $KEY" "pingtimeout 2" >m2.conf &&
	: >notify.out &&
	{ python3 notify.py "$T/notify.sock" "$T/m2" "$T/notify.out" & } &&
	rp=$! &&
	test_when_finished "kill $rp 2>/dev/null" &&
	wait_for "test -S $T/notify.sock" &&
	bg_master "$T/m2.log" env NOTIFY_SOCKET="$T/notify.sock" bpmaster -d -c "$T/m2.conf" &&
	mp=$(bg_pid master-env) &&
	test_when_finished "kill $mp 2>/dev/null" &&
	wait_for "grep -q ^READY=1 notify.out" &&
	head -n 1 notify.out >first &&
	echo "READY=1 mounted=yes" >want &&
	test_cmp want first &&
	test_grep "^STATUS=serving 9P on .*:2224 mounted=yes$" notify.out &&
	kill -HUP "$mp" &&
	wait_for "test \$(grep -c ^READY=1 notify.out) = 2" &&
	test_grep "^RELOADING=1 " notify.out &&
	test_grep "^MONOTONIC_USEC=[1-9][0-9]* " notify.out &&
	sed -n "/^RELOADING=1/,\$p" notify.out | grep -q "^READY=1" &&
	kill -TERM "$mp" &&
	wait_gone "$mp" &&
	wait_gone "$rp" &&
	test_grep "^STOPPING=1 " notify.out &&
	! mountpoint -q m2
'

# nfpm is built by the go tool the first time (minutes on a fresh machine;
# cached after), outside the tests' time limit.
test_setup 'nfpm, the package builder, builds' make -s -C "$BPROC_ROOT" nfpm

test_expect_success 'make deb: a package with the files of make install, under /usr' '
	make -s -C "$BPROC_ROOT" deb >out 2>&1 &&
	deb=$(ls "$BPROC_ROOT"/build/bproc_*.deb) &&
	echo "$deb" >debfile &&
	dpkg-deb -f "$deb" Package Architecture >ctl &&
	test_grep "^Package: bproc$" ctl &&
	dpkg-deb -c "$deb" >deblist &&
	awk "\$1 !~ /^d/ { print \$6 }" deblist | sort >debfiles &&
	sed "s|^\./usr/local/|./usr/|" files | sort >want &&
	test_cmp want debfiles &&
	dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles >conffiles &&
	printf "%s\n" /etc/bproc/config.example /etc/default/bpslave /etc/default/recvstats >want &&
	test_cmp want conffiles
'

test_expect_success 'the package installs into a scratch root, and removes and purges cleanly' '
	deb=$(cat debfile) &&
	R=$T/root &&
	mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" &&
	: >"$R/var/lib/dpkg/status" &&
	dpkg --root="$R" --force-script-chrootless -i "$deb" >out 2>&1 &&
	st=$(dpkg-query --root="$R" -W -f="\${Status}" bproc) &&
	test "$st" = "install ok installed" &&
	for c in $CMDS; do
		test -x "$R/usr/bin/$c" || return 1
	done &&
	test -f "$R/usr/lib/systemd/system/bpmaster.service" &&
	test -f "$R/usr/share/man/man7/bproc.7" &&
	test_grep "^ExecStart=/usr/bin/bpmaster -d$" "$R/usr/lib/systemd/system/bpmaster.service" &&
	test -x "$R/usr/bin/bpsh-go" &&
	v=$("$R/usr/bin/bpsh" -V) && test "${v%% *}" = bpsh &&
	dpkg --root="$R" --force-script-chrootless -r bproc >out 2>&1 &&
	! test -e "$R/usr/bin/bpsh" &&
	test -f "$R/etc/default/bpslave" &&
	mkdir -p "$R/var/lib/bproc" && : >"$R/etc/bproc/cluster.key" &&
	dpkg --root="$R" --force-script-chrootless -P bproc >out 2>&1 &&
	left=$(cd "$R" && find . ! -path "./var/lib/dpkg*" ! -path . ! -path ./var ! -path ./var/lib) &&
	test -z "$left"
'

test_done
