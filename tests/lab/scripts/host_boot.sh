#!/bin/sh
# The bastion host's power-on: pid 1 of fresh mount, pid and uts namespaces (host.py starts
# it with `ip netns exec <bastion ns> unshare ... --kill-child`). Builds the host's root,
# an overlay of the machine's `/` with the package layer copied into a tmpfs upper (a
# second lower layer under `/` is refused as overlapping), then becomes host_init.sh
# inside the chroot. Usage: host_boot.sh LAB_DIR LAYER_DIR HOSTNAME ADMIN_USER
set -eu
lab=$1 layer=$2 hostname=$3 admin=$4
scripts=$(dirname "$0")
base=$lab/host
mkdir -p "$base"
mount -t tmpfs -o mode=0755 lab-host "$base"
mkdir "$base/upper" "$base/work" "$base/root"
cp -a "$layer/." "$base/upper/"
mount -t overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" lab-host-root "$base/root"
r=$base/root

mount -t proc proc "$r/proc"
mount -t sysfs -o ro sysfs "$r/sys"
mount -t tmpfs -o mode=0755,size=64m tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
# A /dev of its own: the few nodes programs need and a private devpts for sessions' ttys.
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
cp "$scripts/host_init.sh" "$r/run/lab/host_init.sh"
install -m 0755 "$scripts/systemctl.sh" "$r/usr/local/sbin/systemctl"
install -m 0755 "$scripts/systemctl.sh" "$r/usr/bin/systemctl"
exec chroot "$r" /bin/sh /run/lab/host_init.sh "$hostname" "$admin"
