#!/bin/sh
# Build a lab host's root filesystem: a minimal Debian release with the packages of a cloud
# image, fetched from Debian's registry by debootstrap. Usage:
#   rootfs_build.sh TARGET SUITE MIRROR PACKAGE,PACKAGE,...
# TARGET must not exist. Each host boots it read-only, under an overlay of its own.
set -eu
target=$1 suite=$2 mirror=$3 packages=$4
debootstrap --variant=minbase --include="$packages" "$suite" "$target" "$mirror"

# What every host makes for itself at boot (host keys, machine id) must not be shared.
rm -f "$target"/etc/ssh/ssh_host_*
: > "$target/etc/machine-id"
# The units a container has no use for: gettys would start on this machine's terminals, and
# there are no kernel modules or devices to manage.
for unit in getty@.service serial-getty@.service console-getty.service container-getty@.service \
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
  systemd-modules-load.service systemd-udev-trigger.service systemd-firstboot.service \
  systemd-remount-fs.service; do
  ln -sf /dev/null "$target/etc/systemd/system/$unit"
done
# Debian's sshd_config as the package ships it (as on a fresh cloud image).
cp "$target/usr/share/openssh/sshd_config" "$target/etc/ssh/sshd_config"
rm -rf "$target"/var/cache/apt/archives/*.deb "$target"/var/lib/apt/lists/*
