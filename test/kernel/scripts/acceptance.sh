# The kernel acceptance of Realize's NFS view (SPEC §4.7), run by
# internal/e2e/kernel_test.go against two real daemons on the host:
#   A holds the files real; B holds none of them (its arena is unpinned), and
#   the two made concurrent versions of clash.txt before they met.
# The kernel mounts B's export at /mnt (the merged view "/": one top-level
# directory per arena, plus conflicts/), B's read-only all-files view
# ("/.all") at /all and A's export at /a, and:
#   * reads a file byte-identical to A's, through B, through B's all-files
#     view and through A;
#   * reads a whole 100 MiB file, and 4 MiB from the middle of another one
#     with O_DIRECT (the host then checks B fetched about that much);
#   * writes a file (the host then checks it is real on A);
#   * finds the conflict's losing version under /mnt/conflicts/ARENA/clash.txt/,
#     and deletes it (a resolution);
#   * stacks overlayfs on the all-files view (what `realize mount` does on
#     Linux), and checks a copy-up leaves the view below unchanged.
# Variables (from the host):
#   NFS_A, NFS_B        the daemons' NFS ports on the host's 127.0.0.1
#   ARENA               the arena's name
#   SMALL_SHA256        small.txt
#   BIG_SIZE, BIG_SHA256                big.bin (read whole)
#   PART_SIZE, PART_SKIP_MIB, PART_MIB, PART_SHA256
#                       part.bin: PART_MIB MiB read at PART_SKIP_MIB MiB
#   CLASH_A_SHA256, CLASH_B_SHA256      the two versions of clash.txt
#   WRITE_DIR, WRITE_LINES              the guest writes WRITE_DIR/numbers.txt
#                                       = `seq 1 WRITE_LINES`
: "${NFS_A:?}" "${NFS_B:?}" "${ARENA:?}"
all=/all
b=/mnt/$ARENA

kt_mount_nfs "$NFS_B" /mnt
kt_mount_nfs "$NFS_B" /all "" /.all
kt_mount_nfs "$NFS_A" /a
kt_log "B's two views and A's export mounted"
kt_step ls -la /mnt "$b"

# The layout: arenas at the top, conflicts/ beside them.
kt_check "the arena is a directory at the top of B's export" [ -d "$b" ]
kt_check "conflicts/ is at the top of B's export" [ -d /mnt/conflicts ]
kt_check "the all-files view holds the arena" [ -d "$all/$ARENA" ]

# Reads: the same bytes by every route.
kt_assert_sha256 "$b/small.txt" "$SMALL_SHA256"
kt_assert_sha256 "$all/$ARENA/small.txt" "$SMALL_SHA256"
kt_assert_sha256 "/a/$ARENA/small.txt" "$SMALL_SHA256"
kt_assert_size "$b/big.bin" "$BIG_SIZE"
kt_assert_size "$b/part.bin" "$PART_SIZE"
kt_assert_size "/a/$ARENA/big.bin" "$BIG_SIZE"

kt_log "reading big.bin whole (cat)"
kt_assert_sha256 "$b/big.bin" "$BIG_SHA256"
kt_log "reading ${PART_MIB} MiB of part.bin at ${PART_SKIP_MIB} MiB (O_DIRECT: no kernel read-ahead)"
kt_step dd if="$b/part.bin" of=/tmp/part bs=1M skip="$PART_SKIP_MIB" count="$PART_MIB" iflag=direct
kt_assert_sha256 /tmp/part "$PART_SHA256"
kt_log "reads done"

# The all-files view is read-only.
kt_assert_fails sh -c "echo no >'$all/$ARENA/refused.txt'"
kt_assert_missing "$b/refused.txt"

# A write through B: the host checks it becomes real on A.
kt_must mkdir -p "$b/$WRITE_DIR"
kt_step sh -c "seq 1 $WRITE_LINES >'$b/$WRITE_DIR/numbers.txt'"
kt_assert_size "$b/$WRITE_DIR/numbers.txt" "$(seq 1 "$WRITE_LINES" | wc -c)"
kt_step sync

# The conflict: the winner at the path, the other version under conflicts/.
cdir=/mnt/conflicts/$ARENA/clash.txt
kt_wait_until 40 0.5 sh -c "ls '$cdir' | grep -q ."
kt_step ls -la "$cdir"
winner=$(kt_sha256 "$b/clash.txt")
n=0
for f in "$cdir"/*; do
	[ -e "$f" ] || continue
	n=$((n + 1))
	loser=$(kt_sha256 "$f")
	case "$(basename "$f")" in
	?*-?*.txt) kt_log "ok: conflict version named $(basename "$f")" ;;
	*) kt_fail "conflict version $(basename "$f") is not named <peer>-<shorthash>.txt" ;;
	esac
done
kt_check "one conflict version kept for clash.txt (found $n)" [ "$n" = 1 ]
kt_check "clash.txt and its conflict version are the two concurrent versions" \
	[ "$winner $loser" = "$CLASH_A_SHA256 $CLASH_B_SHA256" -o "$winner $loser" = "$CLASH_B_SHA256 $CLASH_A_SHA256" ]
# Deleting the version kept aside resolves the conflict, keeping clash.txt
# as it is (the host then checks the conflict is gone on both peers).
kt_step sh -c "rm '$cdir'/*"
kt_wait_until 40 0.5 sh -c "! ls '$cdir' >/dev/null 2>&1"
kt_assert_sha256 "$b/clash.txt" "$winner"

# overlayfs on the all-files view, upper layer on tmpfs: a copy-up changes
# the merged file only.
kt_mount_tmpfs /upper
kt_mount_overlay "$all/$ARENA" /upper /merged
kt_assert_sha256 /merged/small.txt "$SMALL_SHA256"
kt_step sh -c 'echo "edited in the overlay" >>/merged/small.txt'
kt_check "the edit is in the overlay" [ "$(tail -c 22 /merged/small.txt)" = "edited in the overlay" ]
kt_assert_exists /upper/upper/small.txt
kt_assert_sha256 "$all/$ARENA/small.txt" "$SMALL_SHA256"
kt_step umount /merged
kt_log "acceptance done"
