# cargo xtask vm, stage 2: PID 1 in the overlay over the host's root, run
# by busybox from /run/xvs-vm (the host's own tools are used only for the
# command). Sets up the system, runs /run/xvs-vm/cmd.sh with its stdout and
# stderr on the virtio ports org.xvs.out and org.xvs.err, reports
# "XVS-START" and "XVS-EXIT <status>" on org.xvs.status and powers off.
# Its own messages go to the kernel console (the host's console log).

R=/run/xvs-vm
B=$R/busybox
# KVER, MODULES (the host's path of that kernel's /lib/modules/KVER) and
# VM_HOSTNAME, written by the host.
. $R/params

fail() {
	echo "xvs-vm stage 2: $*"
	$B sync
	$B poweroff -f
	$B sleep 10
}

$B mount -t proc proc /proc || fail "mounting /proc"
$B mount -t sysfs sysfs /sys || fail "mounting /sys"
$B mkdir -p /dev/pts /dev/shm
$B mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
$B mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
# udev would make these; bash's process substitution and `> /dev/stderr`
# need them.
$B ln -sf /proc/self/fd /dev/fd
$B ln -sf /proc/self/fd/0 /dev/stdin
$B ln -sf /proc/self/fd/1 /dev/stdout
$B ln -sf /proc/self/fd/2 /dev/stderr

# Before /tmp is mounted over: MODULES may be anywhere on the host.
$B mkdir -p "/lib/modules/$KVER" || fail "creating /lib/modules/$KVER"
$B mount --bind "$MODULES" "/lib/modules/$KVER" || fail "binding $MODULES"

$B mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp || fail "mounting /tmp"
$B mount -t bpf -o mode=0700 bpf /sys/fs/bpf || fail "mounting bpffs"
$B mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || fail "mounting cgroup2"
$B mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
$B mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
$B hostname "$VM_HOSTNAME"
$B ip link set lo up || fail "bringing lo up"
# The kernel's on-demand module loading runs the host's kmod, which finds
# the modules through the bind above.
echo /sbin/modprobe >/proc/sys/kernel/modprobe

port() {
	for d in /sys/class/virtio-ports/*; do
		if [ "$($B cat "$d/name" 2>/dev/null)" = "$1" ] && [ -c "/dev/${d##*/}" ]; then
			echo "/dev/${d##*/}"
			return
		fi
	done
}
i=0
while :; do
	OUT=$(port org.xvs.out)
	ERR=$(port org.xvs.err)
	ST=$(port org.xvs.status)
	[ -n "$OUT" ] && [ -n "$ERR" ] && [ -n "$ST" ] && break
	i=$((i + 1))
	[ $i -lt 200 ] || fail "virtio ports org.xvs.{out,err,status} did not show up"
	$B sleep 0.05
done

# A virtio port can be open only once at a time (EBUSY), but commands
# reopen their stdout (`> /dev/stderr`, `tee /dev/stdout`): they get FIFOs,
# and one cat each holds the port.
$B mkfifo $R/out $R/err || fail "mkfifo"
$B cat $R/out >"$OUT" &
RO=$!
$B cat $R/err >"$ERR" &
RE=$!
echo XVS-START >"$ST"
cd /
$B env -i /bin/sh $R/cmd.sh </dev/null >$R/out 2>$R/err
rc=$?
# What the command left running would hold the FIFOs open: stop it now (the
# poweroff would anyway) so that the relays see EOF; they get 3 s to drain.
for p in /proc/[0-9]*; do
	pid=${p#/proc/}
	case " 1 $RO $RE " in
	*" $pid "*) ;;
	*) kill -TERM "$pid" 2>/dev/null ;;
	esac
done
($B sleep 3 && $B kill $RO $RE 2>/dev/null) &
W=$!
wait $RO
wait $RE
$B kill $W 2>/dev/null
echo "XVS-EXIT $rc" >"$ST"
$B sync
$B poweroff -f
$B sleep 10
