#!/bin/sh
# The bastion host's first boot, inside its chroot (see host_boot.sh): what cloud-init
# does on an EC2 instance, then sshd, then a reaper as pid 1.
# Usage: host_init.sh HOSTNAME ADMIN_USER
set -eu
hostname=$1 admin=$2
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
cd /

printf '127.0.1.1\t%s\n' "$hostname" >> /etc/hosts
# Host keys of its own, never the machine's: a new host gets new keys.
rm -f /etc/ssh/ssh_host_*
ssh-keygen -A >/dev/null
# Debian's sshd_config as the package ships it, whatever this machine's own sshd has.
cp /usr/share/openssh/sshd_config /etc/ssh/sshd_config
rm -f /etc/ssh/sshd_config.d/*
# The host is ready when sshd listens; there is no cloud-init to wait for.
rm -f /usr/bin/cloud-init /usr/local/bin/cloud-init

# The admin user as cloud-init makes it on EC2: passwordless sudo, the launch key.
id "$admin" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --user-group "$admin"
install -d -m 0700 -o "$admin" -g "$admin" "/home/$admin/.ssh"
install -m 0600 -o "$admin" -g "$admin" /run/lab/admin.pub "/home/$admin/.ssh/authorized_keys"
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$admin" > /etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
# cloud-init's drop-in on Debian and Ubuntu images; the rest is Debian's sshd_config.
printf 'PasswordAuthentication no\nPermitRootLogin no\n' > /etc/ssh/sshd_config.d/50-cloud-init.conf

install -d -m 0755 /run/sshd
# -E stays on sshd's command line, which it re-executes on SIGHUP: the log survives reloads.
/usr/sbin/sshd -E /var/log/sshd.log

# pid 1 reaps orphans (sessions, the tool's background timers) so none lingers as a zombie.
exec /usr/bin/python3 -c '
import os, time
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.2)
'
