"""Write the reconstructed facts of Amazon Linux 2023, Ubuntu 22.04 and Ubuntu 24.04.

    .venv/bin/python -m tests.host.reconstructed.build

None of these hosts was recorded: each section is put together from the documents README.md
names, in the shape the facts script prints (the Debian files in ../recorded, captured on
real hosts, show that shape for every section). Where a section's text follows a recorded
Debian section (sshd -T's keyword list, journald.conf), the lines that differ are replaced.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

HERE = Path(__file__).parent
RECORDED = HERE.parent / "recorded"
SECTION = "@@bastion-fact "


def sections(path: Path) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(SECTION):
            current = found.setdefault(line.removeprefix(SECTION), [])
        else:
            current.append(line)
    return {name: "\n".join(lines) + "\n" if lines else "" for name, lines in found.items()}


def old(name: str, section: str) -> str:
    """A section kept from the earlier file (addresses, accounts, host keys: made up)."""
    return sections(HERE / f"{name}.txt")[section]


def sshd_t(base: str, set_: dict[str, list[str]], drop: tuple[str, ...] = ()) -> str:
    """A recorded `sshd -T` with keywords replaced (in place), dropped or added at the end."""
    out: list[str] = []
    done: set[str] = set()
    for line in base.splitlines():
        keyword = line.split(" ", 1)[0]
        if keyword in drop:
            continue
        if keyword in set_:
            if keyword not in done:
                out += [f"{keyword} {v}" for v in set_[keyword]]
                done.add(keyword)
            continue
        out.append(line)
    out += [f"{k} {v}" for k, values in set_.items() if k not in done for v in values]
    return "\n".join(out) + "\n"


def renamed(text: str) -> str:
    """OpenSSH 8.5 renamed sshd -T's *acceptedkeytypes keywords *acceptedalgorithms."""
    return text.replace("\npubkeyacceptedkeytypes ", "\npubkeyacceptedalgorithms ").replace(
        "\nhostbasedacceptedkeytypes ", "\nhostbasedacceptedalgorithms "
    )


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- OpenSSH's `ssh -Q` lists, from OpenSSH's source (kex.c, cipher.c, mac.c, sshkey.c) ---

KEX_87 = """\
diffie-hellman-group1-sha1
diffie-hellman-group14-sha1
diffie-hellman-group14-sha256
diffie-hellman-group16-sha512
diffie-hellman-group18-sha512
diffie-hellman-group-exchange-sha1
diffie-hellman-group-exchange-sha256
ecdh-sha2-nistp256
ecdh-sha2-nistp384
ecdh-sha2-nistp521
curve25519-sha256
curve25519-sha256@libssh.org
sntrup761x25519-sha512@openssh.com
"""
CIPHERS = """\
3des-cbc
aes128-cbc
aes192-cbc
aes256-cbc
aes128-ctr
aes192-ctr
aes256-ctr
aes128-gcm@openssh.com
aes256-gcm@openssh.com
chacha20-poly1305@openssh.com
"""
KEY_SIG_OLD = """\
ssh-ed25519
ssh-ed25519-cert-v01@openssh.com
sk-ssh-ed25519@openssh.com
sk-ssh-ed25519-cert-v01@openssh.com
ssh-rsa
rsa-sha2-256
rsa-sha2-512
ssh-dss
ecdsa-sha2-nistp256
ecdsa-sha2-nistp384
ecdsa-sha2-nistp521
sk-ecdsa-sha2-nistp256@openssh.com
webauthn-sk-ecdsa-sha2-nistp256@openssh.com
ssh-rsa-cert-v01@openssh.com
rsa-sha2-256-cert-v01@openssh.com
rsa-sha2-512-cert-v01@openssh.com
ssh-dss-cert-v01@openssh.com
ecdsa-sha2-nistp256-cert-v01@openssh.com
ecdsa-sha2-nistp384-cert-v01@openssh.com
ecdsa-sha2-nistp521-cert-v01@openssh.com
sk-ecdsa-sha2-nistp256-cert-v01@openssh.com
"""


def algorithms(kex: str, key_sig: str) -> str:
    macs = sections(RECORDED / "debian12.txt")["ssh_algorithms"].split("@@mac\n")[1]
    macs = macs.split("@@key-sig")[0]
    return f"@@kex\n{kex}@@cipher\n{CIPHERS}@@mac\n{macs}@@key-sig\n{key_sig}"


def key_sig_new() -> str:
    return sections(RECORDED / "debian12.txt")["ssh_algorithms"].split("@@key-sig\n")[1]


# --- Amazon Linux 2023 --------------------------------------------------------------------

AL2023_OS = """\
NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023.6.20241121"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
DOCUMENTATION_URL="https://docs.aws.amazon.com/linux/"
SUPPORT_URL="https://aws.amazon.com/premiumsupport/"
BUG_REPORT_URL="https://github.com/amazonlinux/amazon-linux-2023"
VENDOR_NAME="AWS"
VENDOR_URL="https://aws.amazon.com/"
SUPPORT_END="2029-06-30"
"""

AL2023_SSHD_CONFIG = """\
#	$OpenBSD: sshd_config,v 1.104 2021/07/02 05:11:21 dtucker Exp $

# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

# This sshd was compiled with PATH=/usr/local/bin:/usr/bin:/usr/local/sbin:/usr/sbin

# The strategy used for options in the default sshd_config shipped with
# OpenSSH is to specify options with their default value where
# possible, but leave them commented.  Uncommented options override the
# default value.

# To modify the system-wide sshd configuration, create a  *.conf  file under
#  /etc/ssh/sshd_config.d/  which will be automatically included below
Include /etc/ssh/sshd_config.d/*.conf

# If you want to change the port on a SELinux system, you have to tell
# SELinux about this change.
# semanage port -a -t ssh_port_t -p tcp #PORTNUMBER
#
#Port 22
#AddressFamily any
#ListenAddress 0.0.0.0
#ListenAddress ::

#HostKey /etc/ssh/ssh_host_rsa_key
#HostKey /etc/ssh/ssh_host_ecdsa_key
#HostKey /etc/ssh/ssh_host_ed25519_key

# Ciphers and keying
#RekeyLimit default none

# Logging
#SyslogFacility AUTH
#LogLevel INFO

# Authentication:

#LoginGraceTime 2m
#PermitRootLogin prohibit-password
#StrictModes yes
#MaxAuthTries 6
#MaxSessions 10

#PubkeyAuthentication yes

# The default is to check both .ssh/authorized_keys and .ssh/authorized_keys2
# but this is overridden so installations will only check .ssh/authorized_keys
AuthorizedKeysFile	.ssh/authorized_keys

#AuthorizedPrincipalsFile none

#AuthorizedKeysCommand none
#AuthorizedKeysCommandUser nobody

# For this to work you will also need host keys in /etc/ssh/ssh_known_hosts
#HostbasedAuthentication no
# Change to yes if you don't trust ~/.ssh/known_hosts for
# HostbasedAuthentication
#IgnoreUserKnownHosts no
# Don't read the user's ~/.rhosts and ~/.shosts files
#IgnoreRhosts yes

# To disable tunneled clear text passwords, change to no here!
#PasswordAuthentication yes
#PermitEmptyPasswords no

# Change to no to disable s/key passwords
#KbdInteractiveAuthentication yes

# Kerberos options
#KerberosAuthentication no
#KerberosOrLocalPasswd yes
#KerberosTicketCleanup yes
#KerberosGetAFSToken no
#KerberosUseKuserok yes

# GSSAPI options
#GSSAPIAuthentication no
#GSSAPICleanupCredentials yes
#GSSAPIStrictAcceptorCheck yes
#GSSAPIKeyExchange no
#GSSAPIEnablek5users no

# Set this to 'yes' to enable PAM authentication, account processing,
# and session processing. If this is enabled, PAM authentication will
# be allowed through the KbdInteractiveAuthentication and
# PasswordAuthentication.  Depending on your PAM configuration,
# PAM authentication via KbdInteractiveAuthentication may bypass
# the setting of "PermitRootLogin without-password".
# If you just want the PAM account and session checks to run without
# PAM authentication, then enable this but set PasswordAuthentication
# and KbdInteractiveAuthentication to 'no'.
# WARNING: 'UsePAM no' is not supported in Fedora and may cause several
# problems.
#UsePAM no

#AllowAgentForwarding yes
#AllowTcpForwarding yes
#GatewayPorts no
#X11Forwarding no
#X11DisplayOffset 10
#X11UseLocalhost yes
#PermitTTY yes
#PrintMotd yes
#PrintLastLog yes
#TCPKeepAlive yes
#PermitUserEnvironment no
#Compression delayed
#ClientAliveInterval 0
#ClientAliveCountMax 3
#UseDNS no
#PidFile /var/run/sshd.pid
#MaxStartups 10:30:100
#PermitTunnel no
#ChrootDirectory none
#VersionAddendum none

# no default banner path
#Banner none

# override default of no subsystems
Subsystem	sftp	/usr/libexec/openssh/sftp-server

# Example of overriding settings on a per-user basis
#Match User anoncvs
#	X11Forwarding no
#	AllowTcpForwarding no
#	PermitTTY no
#	ForceCommand cvs server
PasswordAuthentication no
"""

# crypto-policies' DEFAULT policy, as /etc/crypto-policies/back-ends/opensshserver.config
# holds it (included by 50-redhat.conf)
POLICY = {
    "ciphers": ["aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr,"
                "aes128-gcm@openssh.com,aes128-ctr"],
    "macs": ["hmac-sha2-256-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-128-etm@openssh.com,"
             "hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha1,umac-128@openssh.com,"
             "hmac-sha2-512"],
    "kexalgorithms": ["curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,"
                      "ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,"
                      "diffie-hellman-group14-sha256,diffie-hellman-group16-sha512,"
                      "diffie-hellman-group18-sha512"],
    "gssapikexalgorithms": ["gss-curve25519-sha256-,gss-nistp256-sha256-,gss-group14-sha256-,"
                            "gss-group16-sha512-"],
}  # fmt: skip

AL2023_SYSTEMD = """\
@@pid1 systemd
@@socket sshd.socket
IsEnabled=disabled
IsActive=inactive
Accept=yes
Listen=[::]:22 (Stream)
Triggers=
@@cat sshd.socket
# /usr/lib/systemd/system/sshd.socket
[Unit]
Description=OpenSSH Server Socket
Documentation=man:sshd(8) man:sshd_config(5)
Conflicts=sshd.service

[Socket]
ListenStream=22
Accept=yes

[Install]
WantedBy=sockets.target
@@service sshd.service
@@unit sshd@.service
@@cat sshd@.service
# /usr/lib/systemd/system/sshd@.service
[Unit]
Description=OpenSSH per-connection server daemon
Documentation=man:sshd(8) man:sshd_config(5)
Wants=sshd-keygen.target
After=sshd-keygen.target

[Service]
EnvironmentFile=-/etc/sysconfig/sshd
ExecStart=-/usr/sbin/sshd -i $OPTIONS
StandardInput=socket
@@unit sshd.service
ExecStart={ path=/usr/sbin/sshd ; argv[]=/usr/sbin/sshd -D -o AuthorizedKeysCommand /opt/aws/bin/eic_run_authorized_keys %u %f -o AuthorizedKeysCommandUser ec2-instance-connect $SSHD_OPTS ; ignore_errors=no ; start_time=[Mon 2026-11-30 08:20:11 UTC] ; stop_time=[n/a] ; pid=1934 ; code=(null) ; status=0/0 }
EnvironmentFiles=/etc/sysconfig/sshd (ignore_errors=yes)
@@cat sshd.service
# /usr/lib/systemd/system/sshd.service
[Unit]
Description=OpenSSH server daemon
Documentation=man:sshd(8) man:sshd_config(5)
After=network.target sshd-keygen.target
Wants=sshd-keygen.target

[Service]
Type=notify
EnvironmentFile=-/etc/sysconfig/sshd
ExecStart=/usr/sbin/sshd -D $OPTIONS
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
Restart=on-failure
RestartSec=42s

[Install]
WantedBy=multi-user.target

# /usr/lib/systemd/system/sshd.service.d/ec2-instance-connect.conf
[Service]
ExecStart=
ExecStart=/usr/sbin/sshd -D -o "AuthorizedKeysCommand /opt/aws/bin/eic_run_authorized_keys %%u %%f" -o "AuthorizedKeysCommandUser ec2-instance-connect" $SSHD_OPTS
@@env /etc/sysconfig/sshd
"""


def al2023() -> str:
    debian11 = sections(RECORDED / "debian11.txt")
    settings = {
        **POLICY,
        "permitrootlogin": ["without-password"],
        "syslogfacility": ["AUTHPRIV"],
        "gssapiauthentication": ["yes"],
        "gssapicleanupcredentials": ["no"],
        "authorizedkeysfile": [".ssh/authorized_keys"],
        "subsystem": ["sftp /usr/libexec/openssh/sftp-server"],
        "pidfile": ["/var/run/sshd.pid"],
        "x11forwarding": ["yes"],
        "printmotd": ["no"],
        "ipqos": ["af21 cs1"],
    }  # fmt: skip
    drop = ("challengeresponseauthentication", "acceptenv", "debianbanner")
    main = sshd_t(renamed(debian11["sshd_t"]), settings, drop)
    return render({
        "os": AL2023_OS,
        "openssh": "OpenSSH_8.7p1, OpenSSL 3.0.8 7 Feb 2023\n",
        "ssh_algorithms": algorithms(KEX_87, KEY_SIG_OLD),
        "client": "198.51.100.7 51234 172.31.5.10 22\n",
        "service": "unit sshd.service\nunit sshd.service\n",
        "systemd": AL2023_SYSTEMD,
        "programs": old("al2023", "programs"),
        "accounts": old("al2023", "accounts"),
        "files": "",
        "authorized_keys": "",
        "sshd_config": b64(AL2023_SSHD_CONFIG) + "\n/etc/ssh/sshd_config.d/50-redhat.conf\n",
        "sshd_t": main,
        "sshd_t_tunnel": main,
        "host_keys": old("al2023", "host_keys"),
        "moduli": old("al2023", "moduli"),
        "auto_updates": "pid1 systemd\nmanager dnf\ntimer dnf-automatic.timer \n"
                        "timer dnf-automatic-install.timer \n",
        "instance_connect": "/opt/aws/bin/eic_run_authorized_keys\n",
        "journald": journald("debian13"),
        "releasever": "@@dnf\nsystem-release 2023.6.20241121\n",
        "selinux": "mode Enforcing\n",
        "cloud_init": "done\n",
        "marker": "\n@@pending\n",
    })  # fmt: skip


# --- Ubuntu -------------------------------------------------------------------------------

UBUNTU_SSHD_CONFIG = """\

# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

# This sshd was compiled with PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games

# The strategy used for options in the default sshd_config shipped with
# OpenSSH is to specify options with their default value where
# possible, but leave them commented.  Uncommented options override the
# default value.

Include /etc/ssh/sshd_config.d/*.conf

{port}#AddressFamily any
#ListenAddress 0.0.0.0
#ListenAddress ::

#HostKey /etc/ssh/ssh_host_rsa_key
#HostKey /etc/ssh/ssh_host_ecdsa_key
#HostKey /etc/ssh/ssh_host_ed25519_key

# Ciphers and keying
#RekeyLimit default none

# Logging
#SyslogFacility AUTH
#LogLevel INFO

# Authentication:

#LoginGraceTime 2m
#PermitRootLogin prohibit-password
#StrictModes yes
#MaxAuthTries 6
#MaxSessions 10

#PubkeyAuthentication yes

# Expect .ssh/authorized_keys2 to be disregarded by default in future.
#AuthorizedKeysFile	.ssh/authorized_keys .ssh/authorized_keys2

#AuthorizedPrincipalsFile none

#AuthorizedKeysCommand none
#AuthorizedKeysCommandUser nobody

# For this to work you will also need host keys in /etc/ssh/ssh_known_hosts
#HostbasedAuthentication no
# Change to yes if you don't trust ~/.ssh/known_hosts for
# HostbasedAuthentication
#IgnoreUserKnownHosts no
# Don't read the user's ~/.rhosts and ~/.shosts files
#IgnoreRhosts yes

# To disable tunneled clear text passwords, change to no here!
#PasswordAuthentication yes
#PermitEmptyPasswords no

# Change to yes to enable challenge-response passwords (beware issues with
# some PAM modules and threads)
KbdInteractiveAuthentication no

# Kerberos options
#KerberosAuthentication no
#KerberosOrLocalPasswd yes
#KerberosTicketCleanup yes
#KerberosGetAFSToken no

# GSSAPI options
#GSSAPIAuthentication no
#GSSAPICleanupCredentials yes
#GSSAPIStrictAcceptorCheck yes
#GSSAPIKeyExchange no

# Set this to 'yes' to enable PAM authentication, account processing,
# and session processing. If this is enabled, PAM authentication will
# be allowed through the KbdInteractiveAuthentication and
# PasswordAuthentication.  Depending on your PAM configuration,
# PAM authentication via KbdInteractiveAuthentication may bypass
# the setting of "PermitRootLogin prohibit-password".
# If you just want the PAM account and session checks to run without
# PAM authentication, then enable this but set PasswordAuthentication
# and KbdInteractiveAuthentication to 'no'.
UsePAM yes

#AllowAgentForwarding yes
#AllowTcpForwarding yes
#GatewayPorts no
X11Forwarding yes
#X11DisplayOffset 10
#X11UseLocalhost yes
#PermitTTY yes
PrintMotd no
#PrintLastLog yes
#TCPKeepAlive yes
#PermitUserEnvironment no
#Compression delayed
#ClientAliveInterval 0
#ClientAliveCountMax 3
#UseDNS no
#PidFile /run/sshd.pid
#MaxStartups 10:30:100
#PermitTunnel no
#ChrootDirectory none
#VersionAddendum none

# no default banner path
#Banner none

# Allow client to pass locale environment variables
AcceptEnv LANG LC_*

# override default of no subsystems
Subsystem	sftp	/usr/lib/openssh/sftp-server

# Example of overriding settings on a per-user basis
#Match User anoncvs
#	X11Forwarding no
#	AllowTcpForwarding no
#	PermitTTY no
#	ForceCommand cvs server
"""

UBUNTU_SETTINGS = {
    "permitrootlogin": ["without-password"],
    "x11forwarding": ["yes"],
    "printmotd": ["no"],
    "passwordauthentication": ["no"],
    "kbdinteractiveauthentication": ["no"],
}

EIC_DEB = """
# /{lib}/systemd/system/ssh.service.d/ec2-instance-connect.conf
[Service]
ExecStart=
ExecStart=/usr/sbin/sshd -D -o "PermitUserEnvironment EIC_*" -o "AuthorizedKeysCommand /usr/share/ec2-instance-connect/eic_run_authorized_keys %%u %%f" -o "AuthorizedKeysCommandUser ec2-instance-connect" $SSHD_OPTS
"""
EIC_ARGV = (
    "/usr/sbin/sshd -D -o PermitUserEnvironment EIC_* -o AuthorizedKeysCommand "
    "/usr/share/ec2-instance-connect/eic_run_authorized_keys %u %f -o AuthorizedKeysCommandUser "
    "ec2-instance-connect $SSHD_OPTS"
)


def exec_start(pid: int) -> str:
    return (
        f"ExecStart={{ path=/usr/sbin/sshd ; argv[]={EIC_ARGV} ; ignore_errors=no ; "
        f"start_time=[Mon 2026-11-30 08:20:11 UTC] ; stop_time=[n/a] ; pid={pid} ; "
        "code=(null) ; status=0/0 }\n"
    )


def ssh_service(recorded: str, lib: str) -> str:
    """The recorded Debian ssh.service with the EIC package's drop-in after it."""
    text = sections(RECORDED / recorded)["systemd"]
    unit = text.split("@@cat ssh.service\n")[1].split("@@env")[0]
    return unit + EIC_DEB.format(lib=lib)


def ubuntu2204() -> str:
    debian11 = sections(RECORDED / "debian11.txt")
    systemd = debian11["systemd"]
    head = systemd.split("@@unit ssh.service\n")[0]
    systemd = (
        head + "@@unit ssh.service\n" + exec_start(741)
        + "EnvironmentFiles=/etc/default/ssh (ignore_errors=yes)\n"
        + "@@cat ssh.service\n" + ssh_service("debian11.txt", "lib")
        + "@@env /etc/default/ssh\nSSHD_OPTS=\n"
    )  # fmt: skip
    settings = {
        **UBUNTU_SETTINGS,
        "kexalgorithms": ["curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,"
                          "ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
                          "diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,"
                          "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256"],
    }  # fmt: skip
    drop = ("challengeresponseauthentication",)
    main = sshd_t(renamed(debian11["sshd_t"]), settings, drop)
    tunnel = main
    return render({
        "os": old("ubuntu2204", "os"),
        "openssh": "OpenSSH_8.9p1 Ubuntu-3ubuntu0.10, OpenSSL 3.0.2 15 Mar 2022\n",
        "ssh_algorithms": algorithms(KEX_87, KEY_SIG_OLD),
        "client": old("ubuntu2204", "client"),
        "service": "unit ssh.service\nunit ssh.service\nunit sshd.service\n",
        "systemd": systemd,
        "programs": "/usr/lib/openssh/sftp-server\n/usr/sbin/nologin\n/sbin/nologin\n",
        "accounts": old("ubuntu2204", "accounts"),
        "files": old("ubuntu2204", "files"),
        "authorized_keys": old("ubuntu2204", "authorized_keys"),
        "sshd_config": b64(UBUNTU_SSHD_CONFIG.format(port="#Port 22\n"))
        + "\n/etc/ssh/sshd_config.d/50-cloud-init.conf\n"
        "/etc/ssh/sshd_config.d/60-cloudimg-settings.conf\n",
        "sshd_t": main,
        "sshd_t_tunnel": tunnel,
        "host_keys": old("ubuntu2204", "host_keys"),
        "moduli": old("ubuntu2204", "moduli"),
        "auto_updates": sections(RECORDED / "debian12.txt")["auto_updates"],
        "instance_connect": "/usr/share/ec2-instance-connect\n",
        "journald": journald("debian12"),
        "releasever": "",
        "selinux": "",
        "cloud_init": "running\n",
        "marker": "\n@@pending\n",
    })  # fmt: skip


UBUNTU_2404_SOCKET = """\
# /usr/lib/systemd/system/ssh.socket
[Unit]
Description=OpenBSD Secure Shell server socket
Before=sockets.target ssh.service
ConditionPathExists=!/etc/ssh/sshd_not_to_be_run

[Socket]
ListenStream=0.0.0.0:22
ListenStream=[::]:22
BindIPv6Only=ipv6-only
Accept=no
FreeBind=yes

[Install]
WantedBy=sockets.target
RequiredBy=ssh.service

# /run/systemd/generator/ssh.socket.d/addresses.conf
# Automatically generated by sshd-socket-generator
[Socket]
ListenStream=
ListenStream=0.0.0.0:22
ListenStream=[::]:22
"""


def ubuntu2404() -> str:
    debian12 = sections(RECORDED / "debian12.txt")
    systemd = (
        "@@pid1 systemd\n@@socket ssh.socket\nIsEnabled=enabled\nIsActive=active\nAccept=no\n"
        "Listen=0.0.0.0:22 (Stream)\nListen=[::]:22 (Stream)\nTriggers=ssh.service\n"
        f"@@cat ssh.socket\n{UBUNTU_2404_SOCKET}@@service ssh.service\n@@unit ssh.service\n"
        + exec_start(1022) + "EnvironmentFiles=/etc/default/ssh (ignore_errors=yes)\n"
        + "@@cat ssh.service\n"
        + ssh_service("debian13.txt", "usr/lib")
        + "@@generator /usr/lib/systemd/system-generators/sshd-socket-generator\n"
        + "@@env /etc/default/ssh\nSSHD_OPTS=\n"
    )  # fmt: skip
    settings = {
        **UBUNTU_SETTINGS,
        "kexalgorithms": ["sntrup761x25519-sha512@openssh.com,curve25519-sha256,"
                          "curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,"
                          "ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,"
                          "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,"
                          "diffie-hellman-group14-sha256"],
    }  # fmt: skip
    main = sshd_t(debian12["sshd_t"], settings)
    return render({
        "os": old("ubuntu2404", "os"),
        "openssh": "OpenSSH_9.6p1 Ubuntu-3ubuntu13.5, OpenSSL 3.0.13 30 Jan 2024\n",
        "ssh_algorithms": algorithms(KEX_87, key_sig_new()),
        "client": old("ubuntu2404", "client"),
        "service": "unit ssh.service\nunit ssh.service\n",
        "systemd": systemd,
        "programs": "/usr/lib/openssh/sftp-server\n/usr/sbin/nologin\n/sbin/nologin\n",
        "accounts": old("ubuntu2404", "accounts"),
        "files": "",
        "authorized_keys": "",
        "sshd_config": b64(UBUNTU_SSHD_CONFIG.format(port="#Port 22\n"))
        + "\n/etc/ssh/sshd_config.d/50-cloud-init.conf\n"
        "/etc/ssh/sshd_config.d/60-cloudimg-settings.conf\n",
        "sshd_t": main,
        "sshd_t_tunnel": main,
        "host_keys": old("ubuntu2404", "host_keys"),
        "moduli": old("ubuntu2404", "moduli"),
        "auto_updates": sections(RECORDED / "debian13.txt")["auto_updates"],
        "instance_connect": "/usr/share/ec2-instance-connect\n",
        "journald": journald("debian13"),
        "releasever": "",
        "selinux": "",
        "cloud_init": "done\n",
        "marker": "\n@@pending\n",
    })  # fmt: skip


def journald(release: str) -> str:
    return sections(RECORDED / f"{release}.txt")["journald"]


ORDER = (
    "os", "openssh", "ssh_algorithms", "client", "service", "systemd", "programs", "accounts",
    "files", "authorized_keys", "sshd_config", "sshd_t", "sshd_t_tunnel", "host_keys", "moduli",
    "auto_updates", "instance_connect", "journald", "releasever", "selinux", "cloud_init",
    "marker",
)  # fmt: skip


def render(values: dict[str, str]) -> str:
    assert tuple(values) == ORDER, set(ORDER) ^ set(values)
    return "".join(f"{SECTION}{name}\n{values[name]}" for name in ORDER) + f"{SECTION}end\n"


def main() -> int:
    built = {"al2023": al2023(), "ubuntu2204": ubuntu2204(), "ubuntu2404": ubuntu2404()}
    for name, text in built.items():
        (HERE / f"{name}.txt").write_text(text, encoding="utf-8")
        print(f"{HERE / name}.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
