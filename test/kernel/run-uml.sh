#!/usr/bin/env bash
# Boots a real Linux kernel (Debian's user-mode-linux) as a process, runs one
# guest test script in it and reports PASS or FAIL.
#
#   test/kernel/run-uml.sh [options] GUEST_SCRIPT
#   test/kernel/run-uml.sh --check      # can this machine run it? (exit 0 / 3)
#
# Options (each also settable through the environment variable shown):
#   --cache DIR     where the guest root template is built once and reused
#                   (KTEST_CACHE; default ${TMPDIR:-/tmp}/realize-ktest-cache)
#   --work DIR      this run's directory: root, console log (KTEST_WORK; default
#                   a new temporary directory, removed after a PASS)
#   --timeout SECS  limit for the whole boot-test-poweroff (KTEST_TIMEOUT; 120)
#   --env KEY=VAL   a variable for the guest script (repeatable)
#   --keep          keep the work directory even after a PASS
#   --disk MIB      give the guest an ext4 disk of MIB MiB as /dev/ubdb (a
#                   sparse file in the work directory; needs mkfs.ext4 here,
#                   else the guest has none and says so with KT_DISK=none)
# Also: KTEST_UML (the UML binary), KTEST_MEM (guest memory, 256M),
# KTEST_SLIRP (the slirp binary).
#
# The guest sees the host's 127.0.0.1 as 10.0.2.2 (UML's slirp network), so an
# NFS server listening on 127.0.0.1:P is mounted with kt_mount_nfs P DIR (see
# guest/lib.sh). The script runs as PID 1's payload with the guest library
# sourced; it passes when it exits 0 having recorded no failure.
#
# Exit status: 0 PASS; 1 FAIL; 2 bad usage; 3 this machine cannot run UML
# (the message says what is missing); 124 timeout (UML was killed).
# The UML process never outlives this script: it is killed, by PID, on
# timeout, on SIGINT/SIGTERM and on any exit; the guest also powers itself
# off when its own copy of the time limit runs out.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${KTEST_CACHE:-${TMPDIR:-/tmp}/realize-ktest-cache}
WORK=${KTEST_WORK:-}
TIMEOUT=${KTEST_TIMEOUT:-120}
MEM=${KTEST_MEM:-256M}
KEEP=0
CHECK=0
DISK=
ENVS=()

say() { echo "run-uml: $*" >&2; }
usage() { say "usage: $0 [--cache DIR] [--work DIR] [--timeout SECS] [--env KEY=VAL]... [--keep] GUEST_SCRIPT | --check"; exit 2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--cache) CACHE=${2:?}; shift 2 ;;
	--work) WORK=${2:?}; shift 2 ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	--env) case "${2:-}" in [A-Za-z_]*=*) ENVS+=("$2") ;; *) usage ;; esac; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--disk) DISK=${2:?}; shift 2 ;;
	--check) CHECK=1; shift ;;
	-h|--help) usage ;;
	--) shift; break ;;
	-*) usage ;;
	*) break ;;
	esac
done
[ "$CHECK" = 1 ] || [ $# = 1 ] || usage
case "$TIMEOUT" in ''|*[!0-9]*) say "--timeout wants whole seconds, got '$TIMEOUT'"; exit 2 ;; esac
case "$DISK" in *[!0-9]*) say "--disk wants MiB, got '$DISK'"; exit 2 ;; esac

# ---- what this machine needs -------------------------------------------------

UML=${KTEST_UML:-$(command -v linux.uml || command -v linux || true)}
SLIRP=${KTEST_SLIRP:-$(command -v slirp-fullbolt || command -v slirp || true)}
BUSYBOX=$(command -v busybox || true)
MODPROBE=$(command -v modprobe || echo /sbin/modprobe)
MODULES_DIR=/usr/lib/uml/modules
FIX="install: apt-get install -y --no-install-recommends user-mode-linux busybox-static kmod slirp"

# missing prints one line per unmet need; nothing when all is there.
missing() {
	[ -n "$UML" ] && [ -x "$UML" ] || echo "no user-mode-linux kernel (linux.uml / linux) in PATH ($FIX)"
	[ -n "$SLIRP" ] && [ -x "$SLIRP" ] || echo "no slirp binary for UML networking ($FIX)"
	if [ -z "$BUSYBOX" ]; then
		echo "no busybox ($FIX)"
	elif ! LC_ALL=C ldd "$BUSYBOX" 2>&1 | grep -q 'not a dynamic executable'; then
		echo "$BUSYBOX is not statically linked (install busybox-static)"
	fi
	[ -x "$MODPROBE" ] || echo "no modprobe to resolve module dependencies ($FIX)"
	[ -n "$(ls "$MODULES_DIR" 2>/dev/null)" ] || echo "no UML kernel modules in $MODULES_DIR ($FIX)"
	[ -n "$(shmdir)" ] || echo "no writable, executable-mappable directory for UML's memory (/dev/shm or \$TMPDIR)"
}

# shmdir picks where UML keeps its memory file: /dev/shm when writable and
# not noexec (UML maps it executable), else $TMPDIR or /tmp.
shmdir() {
	local d
	for d in /dev/shm "${TMPDIR:-/tmp}"; do
		[ -d "$d" ] && [ -w "$d" ] || continue
		if findmnt -no OPTIONS --target "$d" 2>/dev/null | tr , '\n' | grep -qx noexec; then continue; fi
		echo "$d"; return
	done
}

problems=$(missing)
if [ -n "$problems" ]; then
	while read -r l; do say "cannot run UML here: $l"; done <<<"$problems"
	exit 3
fi
if [ "$CHECK" = 1 ]; then
	say "ok: $UML ($(ls "$MODULES_DIR" | sort -V | tail -1)), $SLIRP, $BUSYBOX"
	exit 0
fi

SCRIPT=$1
[ -f "$SCRIPT" ] || { say "no guest script $SCRIPT"; exit 2; }

# ---- the guest root template, built once per (kernel, busybox, modules) ------

KVER=$(ls "$MODULES_DIR" | sort -V | tail -1)
MODULES="nfsv3 overlay"
KEY=$({ echo "v1 $KVER $MODULES"; sha256sum "$BUSYBOX" "$UML"; } | sha256sum | cut -c1-16)
TEMPLATE=$CACHE/root-$KEY

build_template() {
	local tmp modroot ko rel
	mkdir -p "$CACHE" || return 1
	tmp=$(mktemp -d "$CACHE/.build-XXXXXX") || return 1
	mkdir -p "$tmp"/{bin,sbin,etc,proc,sys,dev,tmp,mnt,job,lib/modules}
	cp "$BUSYBOX" "$tmp/bin/busybox"
	# Applet links made here, so the guest never writes to its /bin.
	for a in $("$BUSYBOX" --list); do
		[ "$a" = busybox ] || ln -s busybox "$tmp/bin/$a"
	done
	# The modules and their dependencies, in load order.
	modroot=$tmp/.modroot
	mkdir -p "$modroot/lib/modules"
	ln -s "$MODULES_DIR/$KVER" "$modroot/lib/modules/$KVER"
	: >"$tmp/modules.list"
	for m in $MODULES; do
		"$MODPROBE" -d "$modroot" -S "$KVER" --show-depends "$m" || { rm -rf "$tmp"; return 1; }
	done | awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++' | while read -r ko; do
		rel=/lib/modules/$KVER/${ko#*/lib/modules/$KVER/}
		mkdir -p "$tmp$(dirname "$rel")"
		cp "$ko" "$tmp$rel"
		echo "$rel" >>"$tmp/modules.list"
	done
	rm -rf "$modroot"
	[ -s "$tmp/modules.list" ] || { say "no modules resolved for: $MODULES"; rm -rf "$tmp"; return 1; }
	# Another run may have built it meanwhile: either copy is fine.
	mv -T "$tmp" "$TEMPLATE" 2>/dev/null || rm -rf "$tmp"
	say "built guest root $TEMPLATE (UML $KVER; modules: $(tr '\n' ' ' <"$TEMPLATE/modules.list"))"
}
if [ ! -f "$TEMPLATE/modules.list" ]; then
	build_template || { say "could not build the guest root in $CACHE"; exit 1; }
fi

# The XSAVE shim (see uml-xstate.c), built once per source. Without a C
# compiler UML runs as is, which works on hosts with a small XSAVE area.
PRELOAD=
CC=${CC:-cc}
if command -v "$CC" >/dev/null 2>&1; then
	PRELOAD=$CACHE/uml-xstate-$(sha256sum "$HERE/uml-xstate.c" | cut -c1-16).so
	if [ ! -f "$PRELOAD" ]; then
		"$CC" -O2 -shared -fPIC -o "$PRELOAD.tmp.$$" "$HERE/uml-xstate.c" -ldl &&
			mv -f "$PRELOAD.tmp.$$" "$PRELOAD" || { say "could not build the XSAVE shim with $CC"; exit 1; }
	fi
fi

# ---- this run ---------------------------------------------------------------

OWN_WORK=0
if [ -z "$WORK" ]; then
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/realize-ktest-XXXXXX") || exit 1
	OWN_WORK=1
fi
case "$WORK" in *[[:space:],]*) say "the work directory must have no spaces or commas: $WORK"; exit 2 ;; esac
WORK=$(mkdir -p "$WORK" && cd "$WORK" && pwd) || exit 1
ROOT=$WORK/root
CONSOLE=$WORK/console.log
rm -rf "$ROOT" "$WORK/uml"
mkdir -p "$WORK/uml" # UML's own runtime files (else in ~/.uml)
# Hard links when the cache is on the same filesystem: a fresh root in
# milliseconds, and the guest's writes never reach the template.
cp -al "$TEMPLATE" "$ROOT" 2>/dev/null || cp -a "$TEMPLATE" "$ROOT" || exit 1
cp "$HERE/guest/init" "$ROOT/init"
cp "$HERE/guest/lib.sh" "$ROOT/lib/ktest.sh"
cp "$SCRIPT" "$ROOT/job/test.sh"
chmod 755 "$ROOT/init"

# A disk for the guest: ext4, made here (the guest's busybox has no mkfs).
UBD=()
KT_DISK=none
if [ -n "$DISK" ]; then
	if command -v mkfs.ext4 >/dev/null 2>&1 &&
		truncate -s "${DISK}M" "$WORK/disk.img" && mkfs.ext4 -q -F "$WORK/disk.img" >/dev/null 2>&1; then
		UBD=("ubd1=$WORK/disk.img")
		KT_DISK=/dev/ubdb
	else
		say "no disk for the guest (mkfs.ext4 missing or failed)"
	fi
fi

# The guest's environment, as a file its shell sources: single-quoted values.
{
	echo "KT_TIMEOUT='$TIMEOUT'"
	echo "KT_DISK='$KT_DISK'"
	echo "KT_SCRIPT='$(basename "$SCRIPT" | sed "s/'/'\\\\''/g")'"
	for kv in "${ENVS[@]}"; do
		printf "%s='%s'\n" "${kv%%=*}" "$(printf %s "${kv#*=}" | sed "s/'/'\\\\''/g")"
	done
} >"$ROOT/job/env"

UML_PID=
cleanup() {
	if [ -n "$UML_PID" ] && kill -0 "$UML_PID" 2>/dev/null; then
		kill_uml
	fi
}
# kill_uml kills the UML kernel process and every host process it started
# (its address-space helpers and slirp), each by PID.
kill_uml() {
	local pids
	pids=$(descendants "$UML_PID")
	kill -KILL "$UML_PID" $pids 2>/dev/null
	wait "$UML_PID" 2>/dev/null
	UML_PID=
}
descendants() {
	local c
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		echo "$c"
		descendants "$c"
	done
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

TMPDIR=$(shmdir) LD_PRELOAD=$PRELOAD "$UML" mem="$MEM" root=/dev/root rootfstype=hostfs rootflags="$ROOT" rw \
	init=/init quiet con=null con0=null,fd:1 "eth0=slirp,,$SLIRP" uml_dir="$WORK/uml" "${UBD[@]}" \
	ktest.timeout="$TIMEOUT" >"$CONSOLE" 2>&1 </dev/null &
UML_PID=$!
say "UML pid $UML_PID, limit ${TIMEOUT}s, console $CONSOLE"
start=$(date +%s%N)
deadline=$((start + TIMEOUT * 1000000000))
timed_out=0
while kill -0 "$UML_PID" 2>/dev/null; do
	# Reap it as soon as it exits (kill -0 would see a zombie).
	if ! [ -d /proc/"$UML_PID" ] || grep -q '^State:.*Z' /proc/"$UML_PID"/status 2>/dev/null; then break; fi
	if [ "$(date +%s%N)" -ge "$deadline" ]; then
		timed_out=1
		kill_uml
		break
	fi
	sleep 0.1
done
[ -n "$UML_PID" ] && wait "$UML_PID" 2>/dev/null
uml_rc=$?
UML_PID=
wall=$(( ($(date +%s%N) - start) / 1000000 ))
rm -f "$WORK/disk.img" # scratch, and large

# ---- the verdict -------------------------------------------------------------

# The console ends its lines with CR LF.
tr -d '\r' <"$CONSOLE" >"$CONSOLE.txt" && mv -f "$CONSOLE.txt" "$CONSOLE"
echo "----- guest console ($CONSOLE) -----"
cat "$CONSOLE"
echo "----- end of guest console -----"
secs=$(printf '%d.%03d' $((wall / 1000)) $((wall % 1000)))
if [ "$timed_out" = 1 ]; then
	echo "KTEST: RESULT FAIL (timeout: UML killed after ${TIMEOUT}s)"
	say "FAIL: timed out after ${secs}s; work directory kept: $WORK"
	exit 124
fi
if grep -qx 'KTEST: RESULT PASS' "$CONSOLE"; then
	say "PASS in ${secs}s ($(basename "$SCRIPT"))"
	[ "$OWN_WORK" = 1 ] && [ "$KEEP" = 0 ] && rm -rf "$WORK"
	exit 0
fi
grep -q '^KTEST: RESULT FAIL' "$CONSOLE" || echo "KTEST: RESULT FAIL (no result from the guest; UML exit status $uml_rc)"
if [ -z "$PRELOAD" ] && grep -q 'ptrace set fp regs failed' "$CONSOLE"; then
	say "cannot run UML here: this CPU's XSAVE area is larger than UML 6.1 handles; install a C compiler (gcc) so run-uml.sh can build its uml-xstate.c shim"
	exit 3
fi
say "FAIL in ${secs}s; work directory kept: $WORK"
exit 1
