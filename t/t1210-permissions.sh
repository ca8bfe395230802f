#!/bin/sh
# One policy on the mount as over 9P (fs/synth/policy.go): touch and
# truncation of synthetic files, access(2), and the writer's environment
# and working directory reaching the job through the FUSE adapter.
. "$(dirname "$0")/lib.sh"

test_setup 'a 1-node cluster comes up' cluster_up 1
test_setup 'a test user exists' ensure_user bptest

test_expect_success 'root touches a synthetic file: accepted, nothing changes' '
	before=$(stat -c %Y $BPROC/node/0/status) &&
	touch $BPROC/node/0/status &&
	touch -d @1 $BPROC/node/0/status &&
	after=$(stat -c %Y $BPROC/node/0/status) &&
	test "$after" = "$before"
'

test_expect_success 'a user touches what they may write (ctl, 0666), not what they may not' '
	as_user bptest touch $BPROC/node/0/ctl &&
	! as_user bptest touch $BPROC/node/0/status 2>err &&
	test_grep "Permission denied" err &&
	! as_user bptest touch -d @1 $BPROC/node/0/ctl 2>err &&
	test_grep "not permitted" err
'

test_expect_success 'truncating to 0 is a no-op for writers, other sizes fail' '
	as_user bptest truncate -s 0 $BPROC/node/0/ctl &&
	! as_user bptest truncate -s 0 $BPROC/node/0/status 2>err &&
	test_grep "Permission denied" err &&
	! truncate -s 5 $BPROC/node/0/ctl 2>err &&
	test_grep "not permitted" err &&
	! truncate -s 0 $BPROC/node/0 2>err &&
	test_grep "Is a directory" err
'

test_expect_success 'access(2) on the mount is the tree'"'"'s: node execute bits decide' '
	test_when_finished "chmod 0111 $BPROC/node/0" &&
	as_user bptest test -x $BPROC/node/0 &&
	chmod 0110 $BPROC/node/0 &&
	! as_user bptest test -x $BPROC/node/0 &&
	! as_user bptest test -w $BPROC/node/0/status &&
	as_user bptest test -w $BPROC/node/0/ctl
'

test_expect_success 'a job gets the writer'"'"'s environment and working directory' '
	mkdir -p "$T/wd" && chmod 0755 "$T/wd" &&
	printf "#!/bin/sh\necho \"\$PWD \$POLICY_ENV\"\n" >"$T/wd/show" && chmod 0755 "$T/wd/show" &&
	as_user bptest env POLICY_ENV=from-writer bash -c "cd $T/wd && exec 3<>$BPROC/node/0/ctl && echo \"exec ./show\" >&3 && cat <&3" >pid &&
	pid=$(cat pid) &&
	cat $BPROC/proc/$pid/stdout >out &&
	echo "$T/wd from-writer" >expect &&
	test_cmp expect out
'

test_done
