#!/bin/sh
# Build the bastion host's package layer: apt-get in a throw-away overlay chroot over `/`.
# Run by layer.py inside `unshare --mount --propagation private`, so every mount made here
# vanishes with this script. Usage: layer_build.sh WORKDIR PACKAGE...
# The overlay's upper dir (on tmpfs: an upper dir on the same disk as its lower `/` is
# refused) holds exactly what the packages added; it is copied to WORKDIR/layer.
set -eu
work=$1
shift
t=$work/tmpfs
mkdir "$t"
mount -t tmpfs -o mode=0755 lab-layer "$t"
mkdir "$t/upper" "$t/work" "$t/root"
mount -t overlay -o "lowerdir=/,upperdir=$t/upper,workdir=$t/work" lab-layer-root "$t/root"
r=$t/root
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
# Package scripts must not start daemons (there is no init in the chroot anyway).
printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
chmod 0755 "$r/usr/sbin/policy-rc.d"

install_packages='apt-get install -y -q --no-install-recommends "$@"'
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive /bin/sh -c \
  "$install_packages || { apt-get update -q && $install_packages; }" sh "$@"

rm -f "$r/usr/sbin/policy-rc.d"
umount -R "$r"
# Keep packages and their configuration; drop caches, logs of this build and the host keys
# the postinst made (each host start makes its own).
u=$t/upper
rm -rf "$u/var/lib/apt/lists" "$u/var/cache" "$u/var/log" "$u/tmp" "$u/run" "$u/root" \
  "$u/usr/sbin/policy-rc.d"
rm -f "$u"/etc/ssh/ssh_host_*
cp -a "$u" "$work/layer"
