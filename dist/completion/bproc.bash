# bash completion for bproc's commands: bpsh, bprsh, bpstat, bpctl, bpcp,
# beostat, vmadump, bpmaster, bpslave, sendstats, recvstats.
#
# Options come from each command's own -h (so they never go stale); node
# numbers from the tree at $BPROC_MOUNT (default /bproc). Installed as
# share/bash-completion/completions/bproc with a link per command, so
# bash-completion loads it on first use; or source it from ~/.bashrc.

# _bproc_help CMD: sets _bproc_o (every option CMD -h lists) and _bproc_a
# (those that take an argument), cached per command.
declare -gA _bproc_opts_cache _bproc_args_cache 2>/dev/null
_bproc_help() {
	local cmd=$1
	if [[ -z ${_bproc_opts_cache[$cmd]+set} ]]; then
		# "  -k, --key file   text": the options, then their argument
		# (one space apart), then two spaces and the description.
		local lines
		lines=$(command "$cmd" -h 2>/dev/null | awk '
			/^ +-/ {
				sub(/^ +/, ""); left = $0; sub(/  .*/, "", left)
				n = split(left, w, /[ ,]+/); arg = (w[n] !~ /^-/)
				for (i = 1; i <= n; i++) if (w[i] ~ /^-/) { o = o " " w[i]; if (arg) a = a " " w[i] }
			}
			END { print o; print a }')
		_bproc_opts_cache[$cmd]=${lines%%$'\n'*}
		_bproc_args_cache[$cmd]=${lines#*$'\n'}
	fi
	_bproc_o=${_bproc_opts_cache[$cmd]}
	_bproc_a=${_bproc_args_cache[$cmd]}
}

# _bproc_nodes: the node numbers in the tree, the master's -1 included.
_bproc_nodes() {
	local d=${BPROC_MOUNT:-/bproc}/node n
	[[ -d $d ]] || return 0
	for n in "$d"/*; do
		[[ -e $n ]] && printf '%s\n' "${n##*/}"
	done
}

# _bproc_hosts: what bprsh takes as HOST: the node numbers (not -1, ssh's
# option there), the hostnames the nodes reported, and master.
_bproc_hosts() {
	local d=${BPROC_MOUNT:-/bproc}/node n f
	[[ -d $d ]] || return 0
	for n in "$d"/*; do
		[[ -e $n && ${n##*/} != -1 ]] || continue
		printf '%s\n' "${n##*/}"
		f=()
		read -r -a f <"$n/status" 2>/dev/null
		[[ ${#f[@]} -ge 7 && ${f[6]} != - ]] && printf '%s\n' "${f[6]}"
	done
	echo master
}

# bprsh takes ssh's and rsh's options and ignores them; these take a value.
_bproc_ssh_valued=BbcDEeFIiJLlmOoPpQRSWw

# _bproc_ssh_takes WORD: whether ssh's option word WORD (-xo, -p) ends with
# an option whose value is the next word, as bprsh parses them.
_bproc_ssh_takes() {
	local w=$1 i
	[[ $w == --* ]] && return 1
	for ((i = 1; i < ${#w}; i++)); do
		[[ $_bproc_ssh_valued == *"${w:i:1}"* ]] && { ((i == ${#w} - 1)); return; }
	done
	return 1
}

# _bproc_commands: the commands matching $cur, once each.
_bproc_commands() { compgen -c -- "$cur" | sort -u; }

# The states bpctl -s sets, and the words a nodespec may be.
_bproc_states="up down error unavailable reboot halt pwroff"
_bproc_specs="all allup allnotdown master"

# _bproc_reply CMD...: adds CMD's output lines (candidates) to COMPREPLY.
_bproc_reply() {
	local w
	while IFS= read -r w; do COMPREPLY+=("$w"); done < <("$@")
}

_bproc_add() { # _bproc_add WORDS...: adds the words matching $cur
	local IFS=$' \t\n'
	_bproc_reply compgen -W "$*" -- "$cur"
}

_bproc_files() {
	compopt -o filenames 2>/dev/null
	_bproc_reply compgen -f -- "$cur"
}

# _bproc_value CMD OPT: completes the argument of option OPT.
_bproc_value() {
	local IFS=$' \t\n'
	case $1:$2 in
	bpctl:-S | bpctl:--slave) _bproc_add "$(_bproc_nodes) $_bproc_specs" ;;
	bpctl:-s | bpctl:--state) _bproc_add "$_bproc_states" ;;
	bpctl:-u | bpctl:--user) _bproc_reply compgen -u -- "$cur" ;;
	bpctl:-g | bpctl:--group) _bproc_reply compgen -g -- "$cur" ;;
	bpctl:-m | bpctl:--mode) ;;
	bprsh:-*l) _bproc_reply compgen -u -- "$cur" ;;
	bprsh:-*o) ;; # ssh's -o option: nothing to offer
	bprsh:-*) _bproc_files ;;
	beostat:-N | beostat:--node) _bproc_add "$(_bproc_nodes)" ;;
	beostat:-f | beostat:--file) _bproc_add "cpuinfo meminfo loadavg net stat stamp" ;;
	vmadump:-flags) _bproc_add "libs exec other all" ;;
	bpslave:-l | bpslave:--log-facility) _bproc_add "daemon user local0 local1 local2 local3 local4 local5 local6 local7" ;;
	*:-i | *:--interface | *:--stats-interface)
		[[ $1 == bpmaster || $1 == bpslave ]] && return 0 # their -i is a flag
		_bproc_add "$(ls /sys/class/net 2>/dev/null)" ;;
	*) _bproc_files ;;
	esac
}

_bproc() {
	local cmd=${1##*/} cur=${COMP_WORDS[COMP_CWORD]} i w prev=
	local _bproc_o _bproc_a
	local -a pos=()
	COMPREPLY=()
	_bproc_help "$cmd"
	# The words before the cursor: options (and their arguments), then
	# positional words. For bpsh, everything after the command is its own.
	local all=
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ -n $prev ]]; then prev=; continue; fi
		if [[ $cmd == bpsh && ${#pos[@]} -ge $((all ? 1 : 2)) ]] ||
			[[ $cmd == bprsh && ${#pos[@]} -ge 1 ]] ||
			[[ $cmd == vmadump && ${#pos[@]} -ge 2 ]]; then
			pos+=("$w")
			continue
		fi
		case $w in
		--) ;;
		--*=*) ;;
		-1) [[ $cmd == bprsh ]] || pos+=("$w") ;; # the master, as a nodespec (ssh's -1 for bprsh)
		-?*)
			[[ $cmd == bpsh && ( $w == -a || $w == --all || $w == -A || $w == --all-notdown ) ]] && all=1
			[[ " $_bproc_a " == *" $w "* || $cmd:$w == vmadump:-flags ]] && prev=$w
			[[ $cmd == bprsh ]] && _bproc_ssh_takes "$w" && prev=$w
			;;
		*) pos+=("$w") ;;
		esac
	done
	if [[ -n $prev ]]; then
		_bproc_value "$cmd" "${COMP_WORDS[COMP_CWORD - 1]}"
		return 0
	fi
	local n=${#pos[@]}
	if [[ $cmd == bpsh && $n -ge $((all ? 1 : 2)) ]] ||
		[[ $cmd == bprsh && $n -ge 2 ]]; then
		compopt -o default 2>/dev/null # the remote command's own arguments
		return 0
	fi
	if [[ $cur == -* && $cmd != vmadump ]]; then
		_bproc_add "$_bproc_o"
		return 0
	fi
	case $cmd in
	bpsh)
		if [[ $n == 0 && -z $all ]]; then
			_bproc_add "$(_bproc_nodes) $_bproc_specs"
		else
			_bproc_reply _bproc_commands
		fi
		;;
	bprsh)
		if [[ $n == 0 ]]; then
			_bproc_add "$(_bproc_hosts)"
		else
			_bproc_reply _bproc_commands
		fi
		;;
	bpstat) _bproc_add "$(_bproc_nodes) $_bproc_specs" ;;
	bpcp)
		if [[ $cur != *:* ]]; then
			local nodes
			nodes=$(_bproc_nodes | sed 's/$/:/')
			_bproc_add "$nodes master:"
			compopt -o nospace 2>/dev/null
		fi
		_bproc_files
		;;
	vmadump)
		if [[ $n == 0 ]]; then
			_bproc_add "dump restore info $_bproc_o"
			return 0
		fi
		case ${pos[0]}:$cur in
		dump:-*) _bproc_add "-leave -flags" ;;
		restore:-*) _bproc_add "-detach" ;;
		info:-*) _bproc_add "-json" ;;
		dump:*)
			if [[ $n == 1 ]]; then
				_bproc_add "$(ls /proc | grep '^[0-9]')"
			else
				_bproc_files
			fi
			;;
		*) _bproc_files ;;
		esac
		;;
	bpslave) [[ $n == 0 ]] && _bproc_reply compgen -A hostname -- "$cur" ;;
	esac
	return 0
}

complete -F _bproc bpsh bprsh bpstat bpctl bpcp beostat vmadump bpmaster bpslave sendstats recvstats
