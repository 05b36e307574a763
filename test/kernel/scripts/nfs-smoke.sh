# NFS smoke test against any NFSv3 server on the host (go-nfs or a realize
# daemon): mount, read, write, rename, overlayfs on top; with a second port,
# a second export beside the first.
#   NFS_PORT       the export mounted at /mnt (required)
#   NFS_PORT2      optional: a second export (another server), at /mnt2
#   SMOKE_DIR      optional: a directory inside the export(s) to work in (default:
#                  the export's root; a realize export wants an arena, e.g. home)
#   SMOKE_FILE, SMOKE_SHA256
#                  optional: a file (relative to SMOKE_DIR) that must read back
#                  with this SHA-256
: "${NFS_PORT:?NFS_PORT (the host port of the NFS server) is required}"
d=/mnt/${SMOKE_DIR:-}
me="smoke-$(cut -d' ' -f1 /proc/uptime)"

kt_mount_nfs "$NFS_PORT" /mnt
kt_log "mounted at $(cut -d' ' -f1 /proc/uptime)s"
kt_step ls -la "$d"
if [ -n "${SMOKE_FILE:-}" ]; then
	kt_assert_sha256 "$d/$SMOKE_FILE" "$SMOKE_SHA256"
fi

# Writes, read back through the kernel (close-to-open: a fresh open sees them).
kt_must mkdir -p "$d/$me"
kt_step sh -c "seq 1 20000 >'$d/$me/numbers.txt'"
kt_assert_size "$d/$me/numbers.txt" "$(seq 1 20000 | wc -c)"
kt_step mv "$d/$me/numbers.txt" "$d/$me/renamed.txt"
kt_assert_missing "$d/$me/numbers.txt"
kt_assert_content "$d/$me/renamed.txt" "$(seq 1 20000)
"
kt_step dd if=/dev/urandom of=/tmp/random.bin bs=64k count=48
kt_step cp /tmp/random.bin "$d/$me/random.bin"
kt_assert_same /tmp/random.bin "$d/$me/random.bin"
kt_assert_read_bytes 65536 dd if="$d/$me/random.bin" bs=64k skip=10 count=1

# overlayfs: the export below, tmpfs above; the export never changes.
kt_mount_tmpfs /ovl
kt_mount_overlay "$d/$me" /ovl /merged
kt_step sh -c 'echo "appended in the overlay" >>/merged/renamed.txt'
kt_step sh -c 'echo "new in the overlay" >/merged/overlay-only.txt'
kt_step rm /merged/random.bin
kt_check "overlay shows the edit" [ "$(tail -n 1 /merged/renamed.txt)" = "appended in the overlay" ]
kt_check "the export below is unchanged" [ "$(tail -n 1 "$d/$me/renamed.txt")" = 20000 ]
kt_assert_missing /merged/random.bin
kt_assert_exists "$d/$me/random.bin"
kt_assert_missing "$d/$me/overlay-only.txt"
kt_step umount /merged

if [ -n "${NFS_PORT2:-}" ]; then
	d2=/mnt2/${SMOKE_DIR:-}
	kt_mount_nfs "$NFS_PORT2" /mnt2
	kt_step ls -la "$d2"
	kt_assert_missing "$d2/$me"
	kt_must mkdir -p "$d2/$me"
	kt_step cp /tmp/random.bin "$d2/$me/second.bin"
	kt_assert_same /tmp/random.bin "$d2/$me/second.bin"
	kt_assert_missing "$d/$me/second.bin"
	kt_step rm -r "$d2/$me"
fi
kt_step rm -r "$d/$me"
kt_log "done at $(cut -d' ' -f1 /proc/uptime)s"
