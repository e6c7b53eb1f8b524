#!/bin/sh
# The bastion host's first boot, in its chroot before systemd starts (see host_boot.sh):
# what cloud-init does on an EC2 instance. Usage: host_init.sh HOSTNAME ADMIN_USER
set -eu
hostname=$1 admin=$2

echo "$hostname" > /etc/hostname
printf '127.0.1.1\t%s\n' "$hostname" >> /etc/hosts
# Host keys of its own: a new host gets new keys.
rm -f /etc/ssh/ssh_host_*
ssh-keygen -A >/dev/null

# The admin user as cloud-init makes it on EC2: passwordless sudo, the launch key.
id "$admin" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --user-group "$admin"
install -d -m 0700 -o "$admin" -g "$admin" "/home/$admin/.ssh"
install -m 0600 -o "$admin" -g "$admin" /run/lab/admin.pub "/home/$admin/.ssh/authorized_keys"
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$admin" > /etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
# cloud-init's drop-in on Debian and Ubuntu images; the rest is Debian's sshd_config.
printf 'PasswordAuthentication no\nPermitRootLogin no\n' > /etc/ssh/sshd_config.d/50-cloud-init.conf
