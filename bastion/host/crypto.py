"""Which algorithms sshd offers, by `bastion.ssh_crypto` and by what the host's OpenSSH offers.

Every name comes from the host's own lists (`ssh -Q`, the `ssh_algorithms` fact): `sshd -t`
refuses a name its build does not know, and a version number does not say what a
distribution's build holds. `compatible` keeps the strongest the host has and leaves no
algorithm ssh-audit fails (no SHA-1, no NIST curves, no small DH groups) while OpenSSH >= 7.4
and paramiko >= 2.9 clients still connect. `hardened` copies the newest ssh-audit built-in
hardening policy for the host's OS that the host can pass, exactly and in order, because the
policy compares lists, not sets. The tunnel keys' types (ed25519, ECDSA, RSA >= 2048) stay
accepted in both: dbt Cloud does not document which type it generates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bastion.errors import HostError
from bastion.host.facts import SshAlgorithms

MLKEM = "mlkem768x25519-sha256"  # OpenSSH 9.9; the default key exchange from 10.0
SNTRUP = "sntrup761x25519-sha512"  # OpenSSH 9.9's name, also in Debian 12's current 9.2
SNTRUP_OPENSSH = "sntrup761x25519-sha512@openssh.com"  # OpenSSH 8.5
GEX = "diffie-hellman-group-exchange-sha256"

# What sshd appends to its key exchange list by itself (ext-info-s from OpenSSH 9.6, and the
# strict key exchange against Terrapin): ssh-audit's policies list them, sshd_config cannot.
SERVER_ADDED_KEX = ("ext-info-s", "kex-strict-s-v00@openssh.com")

_CURVE25519 = ("curve25519-sha256", "curve25519-sha256@libssh.org")
_GROUP16, _GROUP18 = "diffie-hellman-group16-sha512", "diffie-hellman-group18-sha512"

_COMPATIBLE_KEX = (MLKEM, SNTRUP, SNTRUP_OPENSSH, *_CURVE25519, _GROUP16, _GROUP18, GEX)
_COMPATIBLE_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
_COMPATIBLE_MACS = (
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "umac-128-etm@openssh.com",
    "hmac-sha2-512",
    "hmac-sha2-256",
)
_HOST_KEY_ALGORITHMS = ("ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256")


@dataclass(frozen=True)
class CryptoProfile:
    """The algorithm lists rendered into sshd_config, plus what the host keys must be."""

    name: str
    policy: str  # the ssh-audit policy this profile is written to pass ("" for none)
    kex: tuple[str, ...]
    ciphers: tuple[str, ...]
    macs: tuple[str, ...]
    host_key_algorithms: tuple[str, ...] = _HOST_KEY_ALGORITHMS
    rsa_host_key_bits: int = 3072  # at least this many (compatible) or exactly (hardened)
    rsa_exact: bool = False
    min_modulus_bits: int = 3072

    @property
    def uses_group_exchange(self) -> bool:
        """Only group exchange reads /etc/ssh/moduli: without it the moduli are left alone."""
        return GEX in self.kex


@dataclass(frozen=True)
class HardeningPolicy:
    """One of ssh-audit's built-in server policies (ssh_audit/builtin_policies.py, 3.9), its
    lists in the policy's order less SERVER_ADDED_KEX. Every one of them wants RSA host keys
    of exactly 4096 bits and group-exchange moduli of 3072 bits."""

    name: str
    kex: tuple[str, ...]
    ciphers: tuple[str, ...]
    macs: tuple[str, ...]
    host_key_algorithms: tuple[str, ...] = _HOST_KEY_ALGORITHMS

    def offered_by(self, offered: SshAlgorithms) -> bool:
        return (
            set(self.kex) <= set(offered.kex)
            and set(self.ciphers) <= set(offered.ciphers)
            and set(self.macs) <= set(offered.macs)
            and set(self.host_key_algorithms) <= set(offered.key_sig)
        )


_CIPHERS_256_FIRST = (
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-gcm@openssh.com",
    "aes128-ctr",
)
_MACS_256_FIRST = (
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "umac-128-etm@openssh.com",
)
_MACS_512_FIRST = (
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "umac-128-etm@openssh.com",
)
# The key exchange the policies for OpenSSH 8.5 to 9.5 share (Debian 12 version 2, Amazon
# Linux 2023 version 2, Ubuntu 22.04 version 6).
_CLASSIC_KEX = (SNTRUP_OPENSSH, *_CURVE25519, _GROUP16, _GROUP18, GEX)
# Debian 13 and Ubuntu 26.04: post-quantum key exchange only, so no group exchange either.
_POST_QUANTUM_KEX = (MLKEM, SNTRUP, SNTRUP_OPENSSH)


def _policy(name: str, kex: tuple[str, ...], macs: tuple[str, ...]) -> HardeningPolicy:
    return HardeningPolicy(name, kex, _CIPHERS_256_FIRST, macs)


# For each OS (os-release ID and VERSION_ID), its policies newest first.
_POLICIES: dict[tuple[str, str], tuple[HardeningPolicy, ...]] = {
    ("debian", "13"): (
        _policy("Hardened Debian 13 (version 1)", _POST_QUANTUM_KEX, _MACS_512_FIRST),
    ),
    ("debian", "12"): (
        _policy("Hardened Debian 12 (version 3)", (SNTRUP, *_CLASSIC_KEX), _MACS_256_FIRST),
        _policy("Hardened Debian 12 (version 2)", _CLASSIC_KEX, _MACS_256_FIRST),
    ),
    ("amzn", "2023"): (
        _policy("Hardened Amazon Linux 2023 (version 2)", _CLASSIC_KEX, _MACS_256_FIRST),
    ),
    ("ubuntu", "22.04"): (
        _policy("Hardened Ubuntu Server 22.04 LTS (version 6)", _CLASSIC_KEX, _MACS_256_FIRST),
    ),
    ("ubuntu", "24.04"): (
        _policy(
            "Hardened Ubuntu Server 24.04 LTS (version 2)",
            (SNTRUP_OPENSSH, *_CURVE25519, _GROUP18, GEX, _GROUP16),
            _MACS_512_FIRST,
        ),
    ),
    ("ubuntu", "26.04"): (
        _policy("Hardened Ubuntu Server 26.04 LTS (version 1)", _POST_QUANTUM_KEX, _MACS_512_FIRST),
    ),
}


# Where no built-in policy fits: what the policies for OpenSSH 8.5 to 9.5 share.
_FALLBACK = _policy("", _CLASSIC_KEX, _MACS_256_FIRST)


def policies_for(os_id: str, os_version: str) -> tuple[HardeningPolicy, ...]:
    """The built-in policies written for this OS, newest first (none for most)."""
    return _POLICIES.get((os_id, os_version), ())


def _restricted(
    kex: tuple[str, ...],
    ciphers: tuple[str, ...],
    macs: tuple[str, ...],
    host_keys: tuple[str, ...],
    offered: SshAlgorithms,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Each list in its own order, less what the host does not offer."""
    lists = []
    for wanted, names, query in (
        (kex, offered.kex, "kex"),
        (ciphers, offered.ciphers, "cipher"),
        (macs, offered.macs, "mac"),
        (host_keys, offered.key_sig, "key-sig"),
    ):
        if not names:
            raise HostError(
                f"`ssh -Q {query}` printed nothing on the host, so which algorithms its "
                "OpenSSH offers is unknown",
                hint="install the host's OpenSSH client package (ssh), of the same version "
                "as its server",
            )
        kept = tuple(name for name in wanted if name in names)
        if not kept:
            raise HostError(
                f"the host's OpenSSH offers none of the algorithms bastion configures for "
                f"`ssh -Q {query}` (it offers: {', '.join(names)})",
                hint="update the host's OpenSSH packages",
            )
        lists.append(kept)
    return lists[0], lists[1], lists[2], lists[3]


def profile(mode: str, os_id: str, os_version: str, offered: SshAlgorithms) -> CryptoProfile:
    """The profile for `bastion.ssh_crypto` on this host, from what its OpenSSH offers.

    `hardened` takes the newest built-in policy for the host's OS whose every algorithm the
    host offers. Where there is none (an OS without a policy, such as Debian 11, or a host
    that lacks an algorithm each of its OS's policies needs), the rule is: the key exchange,
    ciphers and MACs the policies for OpenSSH 8.5 to 9.5 share, less what the host does not
    offer, a 4096-bit RSA host key, and no policy name to check against.
    """
    if mode == "hardened":
        policies = policies_for(os_id, os_version)
        chosen = next((p for p in policies if p.offered_by(offered)), _FALLBACK)
        lists = _restricted(
            chosen.kex, chosen.ciphers, chosen.macs, chosen.host_key_algorithms, offered
        )
        return CryptoProfile(
            "hardened", chosen.name, *lists, rsa_host_key_bits=4096, rsa_exact=True
        )
    lists = _restricted(
        _COMPATIBLE_KEX, _COMPATIBLE_CIPHERS, _COMPATIBLE_MACS, _HOST_KEY_ALGORITHMS, offered
    )
    return CryptoProfile("compatible", "", *lists)


def without_group_exchange(chosen: CryptoProfile) -> CryptoProfile:
    """When no modulus of the required size exists, group exchange would fall back to 2048."""
    return dataclasses.replace(chosen, kex=tuple(k for k in chosen.kex if k != GEX))


def user_key_algorithms(offered: SshAlgorithms) -> tuple[str, ...]:
    """What the tunnel and admin keys may be: ed25519, ECDSA and RSA with SHA-2 signatures
    (those of them the host's OpenSSH knows)."""
    names = (
        "ssh-ed25519",
        "sk-ssh-ed25519@openssh.com",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "rsa-sha2-512",
        "rsa-sha2-256",
    )
    return tuple(name for name in names if name in offered.key_sig)
