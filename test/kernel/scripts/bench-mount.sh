# `make bench`'s mount stage (internal/bench/mount.go), in the guest: the
# read and write throughput of a real file through `realize mount`, against
# the same file system used directly, under the same kernel. One daemon
# (its real directory and data on the guest's disk: ext4 on a UML block
# device, or tmpfs when the runner could not make one), its share mounted
# both ways: --mode overlay at /m (Linux's default: a real file is served
# by the kernel from the real directory) and --mode nfs at /n (the macOS
# path: every byte through the daemon).
# Each run, for each route: a write of SIZE_MB MiB (fsynced) of a new file
# into the arena ("local" writes into the real directory itself: the
# daemon indexes it all the same), then reads of one real file by each
# route. The daemon indexes what was written before the next measurement
# starts.
# Output: "BENCH: <route> <op> <MB/s>" lines; the host takes medians.
# Variables: BIN_DIR (static realize and guestio), SIZE_MB, RUNS, REPS
# (measurements per route and run, default 3).
: "${BIN_DIR:?}" "${SIZE_MB:?}" "${RUNS:?}" "${REPS:=3}"
kt_must mkdir -p /host /d
kt_must mount -t hostfs none /host -o "$BIN_DIR"
if [ -b "${KT_DISK:-none}" ]; then
	kt_must mount -t ext4 "$KT_DISK" /d
	echo "BENCH: fs ext4"
else
	kt_mount_tmpfs /d
	echo "BENCH: fs tmpfs"
fi
R=/host/realize
G=/host/guestio
r() { $R --config /d/config.toml "$@"; }
kt_must mkdir -p /d/home /m /n
kt_must r init --name alpha --data /d/data --arena home=/d/home --nfs 127.0.0.1:20491 --listen 127.0.0.1:7001 --pin >/dev/null
r daemon >/tmp/daemon.log 2>&1 &
kt_wait_until 100 0.2 r status
kt_must r mount /m
kt_must r mount --mode nfs /n
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# indexed NAME: the daemon recorded NAME (so it is not hashing it now).
indexed() { kt_wait_until 600 0.1 sh -c "$R --config /d/config.toml log | grep -q ' $1 '"; }
# bench ROUTE OP CMD...: one measurement.
bench() {
	_route=$1 _op=$2
	shift 2
	_out=$("$@") || kt_must false "$_route $_op: $*"
	echo "BENCH: $_route $_op ${_out%% *}"
}
# Each run takes the routes in another order (local overlay nfs, then
# overlay nfs local, ...), REPS times over, interleaved: what one
# measurement leaves behind (the host's cache of the guest's disk,
# writeback, another process on the host) does not always favour the same
# route. A read of the file before the reads puts it in the host's cache
# for all three alike; each read then starts with the guest's caches
# dropped.
path_of() { case $1 in local) echo /d/home ;; overlay) echo /m/home ;; nfs) echo /n/home ;; esac; }
i=1
while [ $i -le "$RUNS" ]; do
	routes=$(echo "local overlay nfs local overlay" | cut -d' ' -f$(((i - 1) % 3 + 1))-$(((i - 1) % 3 + 3)))
	k=1
	while [ $k -le "$REPS" ]; do
		for route in $routes; do
			drop
			bench $route write $G write "$(path_of $route)/w-$route-$i-$k" "$SIZE_MB"
			indexed "w-$route-$i-$k"
		done
		rm -f /d/home/w-overlay-$i-$k /d/home/w-nfs-$i-$k
		[ $k = 1 ] || rm -f /d/home/w-local-$i-$k
		k=$((k + 1))
	done
	drop
	cat "/d/home/w-local-$i-1" >/dev/null
	k=1
	while [ $k -le "$REPS" ]; do
		for route in $routes; do
			drop
			bench $route read $G read "$(path_of $route)/w-local-$i-1"
		done
		k=$((k + 1))
	done
	rm -f /d/home/w-*-$i-*
	i=$((i + 1))
done
kt_must r umount /n
kt_must r umount /m
