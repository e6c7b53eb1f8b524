#!/bin/sh
# The bastion host's power-on: pid 1 of fresh mount, pid, uts and cgroup namespaces (host.py
# starts it with `ip netns exec <bastion ns> unshare ... --kill-child`). Builds the host's
# root, an overlay of the release's root filesystem with its upper on a tmpfs, does what
# cloud-init does on a first boot (host_init.sh, in a chroot), then becomes the release's own
# systemd. Usage: host_boot.sh LAB_DIR ROOTFS HOSTNAME ADMIN_USER
set -eu
lab=$1 rootfs=$2 hostname=$3 admin=$4
scripts=$(dirname "$0")
base=$lab/host
mkdir -p "$base"
mount -t tmpfs -o mode=0755 lab-host "$base"
mkdir "$base/upper" "$base/work" "$base/root"
mount -t overlay -o "lowerdir=$rootfs,upperdir=$base/upper,workdir=$base/work" lab-host-root "$base/root"
r=$base/root

mount -t proc proc "$r/proc"
mount -t sysfs -o ro sysfs "$r/sys"
# This machine may run cgroup v1 with v2 beside it: the host gets a cgroup2 of its own (its
# root is the cgroup namespace's), which is what systemd 247 and later expect.
mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,size=64m tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
# A /dev of its own: the few nodes programs need and a private devpts for sessions' ttys.
# Never the machine's /dev: the host's gettys would start on the machine's terminals.
mount -t tmpfs -o mode=0755,size=1m tmpfs "$r/dev"
mknod -m 0666 "$r/dev/null" c 1 3
mknod -m 0666 "$r/dev/zero" c 1 5
mknod -m 0666 "$r/dev/full" c 1 7
mknod -m 0666 "$r/dev/random" c 1 8
mknod -m 0666 "$r/dev/urandom" c 1 9
mknod -m 0666 "$r/dev/tty" c 5 0
mkdir "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"

hostname "$hostname"
mkdir -m 0700 "$r/run/lab"
cp "$lab/admin_ed25519.pub" "$r/run/lab/admin.pub"
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  /bin/sh -s "$hostname" "$admin" < "$scripts/host_init.sh"
rm -rf "$r/run/lab"
exec chroot "$r" /usr/bin/env -i container=bastion-lab PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd
