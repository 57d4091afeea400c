#!/bin/busybox sh
# cargo xtask vm, stage 1: the initramfs's /init. Loads the modules baked
# into /modules (named NN-name.ko, NN = the load order from modules.dep),
# mounts the host's root (9p tag "hostroot", read-only) under a tmpfs
# overlay and switch_roots into it, running stage 2 with a copy of busybox.
# Everything it says goes to the kernel console (the host's console log).

# The kernel found no /dev/console in the initramfs to open for us.
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
	echo "xvs-vm stage 1: $*"
	# As PID 1, exiting would panic (and that reboots, which ends qemu too),
	# but this says why.
	poweroff -f
	sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys

for m in /modules/*.ko; do
	[ -e "$m" ] || continue
	insmod "$m" || fail "insmod $m failed"
done

run=
for w in $(cat /proc/cmdline); do
	case $w in xvs.run=*) run=${w#xvs.run=} ;; esac
done
[ -n "$run" ] || fail "no xvs.run= on the kernel command line"

# The virtio-9p device may still be probing right after its driver loaded.
i=0
until mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none,ro hostroot /lower 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "cannot mount the host's root (9p tag hostroot)"
	sleep 0.05
done
mount -t tmpfs -o mode=0755 tmpfs /upper || fail "tmpfs for the overlay"
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot ||
	fail "overlay over the host's root"

# /run is a fresh tmpfs in the guest; stage 2 and the run's files go there
# before switch_root, while the host's temp directory is still visible (the
# guest mounts its own /tmp later).
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run || fail "tmpfs on /run"
mkdir -p /newroot/run/xvs-vm
cp /bin/busybox /stage2.sh /newroot/run/xvs-vm/ || fail "copying stage 2"
cp "/newroot$run/params" "/newroot$run/cmd.sh" /newroot/run/xvs-vm/ || fail "copying $run"

mount --move /dev /newroot/dev || fail "moving /dev"
umount /proc /sys
exec switch_root /newroot /run/xvs-vm/busybox sh /run/xvs-vm/stage2.sh
