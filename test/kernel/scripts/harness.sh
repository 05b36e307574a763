# Harness self-test (no NFS server needed): the modules the NFS tests need are
# loaded, overlayfs stacks on tmpfs, the helpers and the result report work.
kt_check "nfs filesystem registered" grep -qw nfs /proc/filesystems
kt_check "overlay filesystem registered" grep -qw overlay /proc/filesystems
kt_check "guest environment passed in" [ "${GREETING:-}" = "it's a 'quoted' value" ]
kt_mount_tmpfs /t
mkdir -p /t/lower
echo "from below" >/t/lower/a.txt
kt_mount_overlay /t/lower /t/ovl /merged
kt_step sh -c 'echo "from above" >>/merged/a.txt'
kt_assert_content /merged/a.txt "from below
from above
"
kt_assert_content /t/lower/a.txt "from below
"
kt_assert_exists /t/ovl/upper/a.txt
kt_assert_same /merged/a.txt /t/ovl/upper/a.txt
kt_assert_size /t/lower/a.txt 11
kt_wait_until 3 0.1 test -f /merged/a.txt
