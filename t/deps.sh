#!/bin/sh
# Installs the system packages the tests and benchmarks need (Debian).
# (pdsh, clustershell, mpich and openmpi: t6000 drives them over bprsh, as a cluster's users do.)
# Idempotent and quiet when everything is already there.
need=""
for p in gcc:gcc ip:iproute2 unshare:util-linux nsenter:util-linux setpriv:util-linux setsid:util-linux mountpoint:util-linux timeout:coreutils sha256sum:coreutils python3:python3 perl:perl chromium:chromium man:man-db groff:groff-base col:bsdextrautils systemd-analyze:systemd dpkg-deb:dpkg pdsh:pdsh clush:clustershell mpiexec.hydra:mpich mpirun.openmpi:openmpi-bin; do
	cmd=${p%%:*}; pkg=${p#*:}
	command -v "$cmd" >/dev/null 2>&1 || need="$need $pkg"
done
[ -e /usr/include/stdio.h ] || need="$need libc6-dev"
dpkg -s libopenmpi-dev >/dev/null 2>&1 || need="$need libopenmpi-dev" # mpicc.openmpi needs its headers
if [ -n "$need" ]; then
	echo "deps: installing$need"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
exit 0
