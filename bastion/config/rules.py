"""Field rules shared by the config and the command line.

Every value that can reach a template, a shell or an AWS call passes one of these first.
Each raises ValueError with a sentence that completes "<key> ...", e.g. "must be a port".
"""

from __future__ import annotations

import ipaddress
import re

from bastion.config.images import NAMED_IMAGES

# Matched whole (fullmatch): `$` alone also matches before a final newline.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*")
_POSIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_AMI_ID = re.compile(r"ami-[0-9a-f]{8,17}")
_SSM_PATH = re.compile(r"ssm:/[A-Za-z0-9/_.-]+")

# Accounts a tunnel user must never be: they exist on common images or belong to services.
SYSTEM_ACCOUNTS = frozenset(
    [
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "gnats",
        "nobody",
        "nogroup",
        "_apt",
        "sshd",
        "messagebus",
        "syslog",
        "uuidd",
        "tcpdump",
        "landscape",
        "pollinate",
        "systemd-network",
        "systemd-resolve",
        "systemd-timesync",
        "systemd-coredump",
        "polkitd",
        "chrony",
        "ec2-user",
        "ec2-instance-connect",
        "ssm-user",
        "ubuntu",
        "admin",
        "debian",
        "centos",
        "fedora",
        "cloud-user",
        "postgres",
        "operator",
        "halt",
        "shutdown",
        "adm",
        "ftp",
        "dbus",
        "tss",
        "rpc",
        "rpcuser",
        "nfsnobody",
        "sudo",
        "wheel",
        "staff",
        "users",
    ]
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


CONTROL_CHARACTERS = (
    "must not contain a control character or a line break (a trailing newline from an "
    "environment variable or a CI secret?)"
)


def has_control_characters(value: str) -> bool:
    return bool(_CONTROL.search(value))


def no_control_characters(value: str) -> str:
    """Every string: a control character (a line break, a NUL) can end a line of
    sshd_config or a shell script early, wherever the value goes."""
    if has_control_characters(value):
        raise ValueError(CONTROL_CHARACTERS)
    return value


def name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            "must be 1-40 characters of a-z, 0-9 and '-', not starting or ending with '-'"
        )
    return value


def hostname(value: str) -> str:
    """A DNS name or an IP address; nothing that could break a config line or a shell."""
    no_control_characters(value)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(value):
        raise ValueError(
            "must be a plain host name (letters, digits, '-' and '.') or an IP address"
        )
    return value.lower()


def posix_user(value: str) -> str:
    if not _POSIX_USER.fullmatch(value):
        raise ValueError(
            "must be a POSIX user name: lower-case letter or '_' first, then a-z, 0-9, '_' "
            "or '-', at most 32 characters"
        )
    return value


def ami(value: str) -> str:
    """A named image, an AMI id or the SSM parameter holding one."""
    if value not in NAMED_IMAGES and not (_AMI_ID.fullmatch(value) or _SSM_PATH.fullmatch(value)):
        raise ValueError(
            f"must be a named image ({', '.join(NAMED_IMAGES)}), an AMI id (ami- and hex "
            "digits) or ssm:/path/to/parameter"
        )
    return value


def port(value: int, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ValueError(f"must be a port from {low} to 65535")
    return value


def positive_int(value: object) -> int:
    """TOML integers only (`${VAR}` digits are turned into integers by the loader); no bools,
    floats or strings."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("must be a positive integer")
    return value


def integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def cidr(value: str) -> Network:
    """A source network for an ingress rule: parsed, never compared as text.

    World-open networks and public networks broader than /16 (IPv4) or /48 (IPv6) are
    refused: a bastion open to large parts of the internet defeats its purpose.
    """
    try:
        network = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.ip_network(value.strip(), strict=False)
            raise ValueError(f"has host bits set: write {fixed} or a /32 address") from None
        raise ValueError("must be a CIDR such as 198.51.100.7/32") from None
    mapped = _ipv4_mapped(network)
    if mapped is not None:  # ::ffff:a.b.c.d/n is the IPv4 network a.b.c.d/(n-96)
        network = mapped
    if network.prefixlen == 0:
        raise ValueError("is open to the whole internet; name the addresses that need access")
    broad = 16 if network.version == 4 else 48
    if network.is_global and network.prefixlen < broad:
        raise ValueError(
            f"is too broad (/{network.prefixlen}): public ranges must be /{broad} or narrower"
        )
    return network


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _ipv4_mapped(network: Network) -> ipaddress.IPv4Network | None:
    if not isinstance(network, ipaddress.IPv6Network) or not network.subnet_of(_MAPPED):
        return None
    address = network.network_address.ipv4_mapped
    assert address is not None
    return ipaddress.IPv4Network((address, network.prefixlen - 96))


def host_port(host: str, port_number: int) -> str:
    """HOST:PORT as sshd's PermitOpen and permitopen= want it (IPv6 in brackets)."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port_number}"
    except ValueError:
        pass
    return f"{host}:{port_number}"


def loopback_host(host: str) -> bool:
    """`localhost` or a loopback address: where plain http/ws may go (local stand-ins)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
