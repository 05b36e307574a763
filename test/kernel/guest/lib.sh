# Guest-side helpers for kernel test scripts (busybox sh). The guest's init
# sources this before the test script, so a script just calls them.
#
# Every failed check prints "KTEST: FAIL ..." and is recorded; the run
# passes only if none was recorded and the script exits 0. kt_must (and
# anything built on it) also ends the script at once: use it for steps the
# rest depends on (a mount), and the kt_assert_* checks for the rest, so one
# run shows every broken check.
#
# From the host: KT_HOST (10.0.2.2 = the host's 127.0.0.1), KT_TIMEOUT, and
# whatever --env KEY=VAL the runner was given.

KT_HOST=10.0.2.2

kt_log() { echo "KTEST: [$(cut -d' ' -f1 /proc/uptime)] $*"; }

# kt_fail MSG: record a failed check and go on.
kt_fail() {
	echo "KTEST: FAIL: $*"
	echo "$*" >>/tmp/ktest.failures
	return 1
}

# kt_step CMD...: run CMD, showing it; a failure is recorded, the script goes on.
kt_step() {
	kt_log "\$ $*"
	"$@" || kt_fail "exit $?: $*"
}

# kt_must CMD...: run CMD, showing it; a failure is recorded and ends the script.
kt_must() {
	kt_log "\$ $*"
	"$@" || {
		kt_fail "exit $?: $* (cannot go on)"
		exit 1
	}
}

# kt_check DESCRIPTION CMD...: a named check, quiet unless it fails.
kt_check() {
	_d=$1
	shift
	if "$@"; then kt_log "ok: $_d"; else kt_fail "$_d"; fi
}

# kt_sha256 FILE: prints FILE's SHA-256 (lowercase hex), or nothing if
# it cannot be read.
kt_sha256() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

# kt_size FILE: prints FILE's size in bytes.
kt_size() { stat -c %s "$1" 2>/dev/null; }

# kt_assert_sha256 FILE HEX: FILE's bytes have this SHA-256.
kt_assert_sha256() {
	_got=$(kt_sha256 "$1")
	if [ "$_got" = "$2" ]; then kt_log "ok: sha256 $1 = $2"; else kt_fail "sha256 $1: got '${_got:-unreadable}', want $2"; fi
}

# kt_assert_same FILE1 FILE2: byte-identical (compared by SHA-256).
kt_assert_same() {
	_a=$(kt_sha256 "$1")
	_b=$(kt_sha256 "$2")
	if [ -n "$_a" ] && [ "$_a" = "$_b" ]; then kt_log "ok: $1 = $2 ($_a)"; else kt_fail "$1 (${_a:-unreadable}) differs from $2 (${_b:-unreadable})"; fi
}

# kt_assert_size FILE BYTES: FILE is BYTES long (as stat shows it).
kt_assert_size() {
	_got=$(kt_size "$1")
	if [ "$_got" = "$2" ]; then kt_log "ok: size $1 = $2"; else kt_fail "size $1: got '${_got:-missing}', want $2"; fi
}

# kt_assert_read_bytes BYTES CMD...: CMD writes exactly BYTES bytes to stdout
# (e.g. kt_assert_read_bytes 4096 dd if=F bs=4096 count=1).
kt_assert_read_bytes() {
	_want=$1
	shift
	_got=$("$@" 2>/dev/null | wc -c)
	if [ "$_got" = "$_want" ]; then kt_log "ok: read $_want bytes: $*"; else kt_fail "read $_got bytes, want $_want: $*"; fi
}

# kt_assert_content FILE TEXT: FILE holds exactly TEXT (no added newline).
kt_assert_content() {
	if [ -f "$1" ] && [ "$(cat "$1"; echo .)" = "$2." ]; then kt_log "ok: content of $1"; else kt_fail "content of $1: got '$(head -c 200 "$1" 2>/dev/null)', want '$2'"; fi
}

kt_assert_exists() { if [ -e "$1" ]; then kt_log "ok: $1 exists"; else kt_fail "$1 does not exist"; fi; }
kt_assert_missing() { if [ ! -e "$1" ]; then kt_log "ok: $1 absent"; else kt_fail "$1 exists, should not"; fi; }

# kt_assert_fails CMD...: CMD must fail (e.g. a write to a read-only view).
kt_assert_fails() {
	if "$@" 2>/dev/null; then kt_fail "succeeded, should have failed: $*"; else kt_log "ok: fails as it should: $*"; fi
}

# kt_wait_until TRIES SECONDS CMD...: retry CMD up to TRIES times, SECONDS
# apart (fractions work); a check that fails when it never succeeds.
kt_wait_until() {
	_tries=$1 _every=$2
	shift 2
	_i=1
	while ! "$@" 2>/dev/null; do
		if [ "$_i" -ge "$_tries" ]; then
			kt_fail "gave up after $_tries tries, $_every s apart: $*"
			return 1
		fi
		_i=$((_i + 1))
		sleep "$_every"
	done
	kt_log "ok: after $_i tries: $*"
}

# kt_is_mounted DIR: DIR is a mount point.
kt_is_mounted() { awk -v d="$1" '$2 == d { found = 1 } END { exit !found }' /proc/mounts; }

# kt_mount_nfs PORT DIR [EXTRA_OPTIONS [EXPORT_PATH]]: mount the NFSv3 export
# served on the host's 127.0.0.1:PORT (MOUNT and NFS on that one TCP port,
# no portmapper, no lock manager: what go-nfs serves) at DIR. Ends the script
# when it fails.
kt_mount_nfs() {
	_opts=vers=3,proto=tcp,port=$1,mountport=$1,mountproto=tcp,nolock,sec=sys,addr=$KT_HOST,mountaddr=$KT_HOST
	[ -n "${3:-}" ] && _opts=$_opts,$3
	mkdir -p "$2"
	kt_must mount -t nfs -o "$_opts" "$KT_HOST:${4:-/}" "$2"
	kt_must kt_is_mounted "$2"
}

# kt_mount_overlay LOWER UPPER_BASE MERGED: overlayfs with LOWER read-only
# below, UPPER_BASE/upper (and UPPER_BASE/work) above, seen at MERGED. Ends
# the script when it fails.
kt_mount_overlay() {
	mkdir -p "$2/upper" "$2/work" "$3"
	kt_must mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/work" "$3"
}

# kt_mount_tmpfs DIR: a fresh tmpfs (e.g. for an overlay's upper layer).
kt_mount_tmpfs() {
	mkdir -p "$1"
	kt_must mount -t tmpfs tmpfs "$1"
}
