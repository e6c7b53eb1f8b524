"""Which algorithms sshd offers, by `bastion.ssh_crypto` and by what the host's OpenSSH speaks.

`compatible` leaves no algorithm ssh-audit fails (no SHA-1, no NIST curves, no small DH
groups) while OpenSSH >= 7.4 and paramiko >= 2.9 clients still connect. `hardened` copies
ssh-audit's built-in hardening policy for the host's OS exactly, order included, because
the policy compares lists, not sets. The tunnel keys' types (ed25519, ECDSA, RSA >= 2048)
stay accepted in both: dbt Cloud does not document which type it generates.
"""

from __future__ import annotations

from dataclasses import dataclass

SNTRUP = "sntrup761x25519-sha512@openssh.com"
GEX = "diffie-hellman-group-exchange-sha256"

_COMPATIBLE_KEX = (
    SNTRUP,
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    GEX,
)
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

# ssh-audit's "Hardened <OS>" server policies (ssh-audit 3.x), for the OpenSSH the OS ships.
# Debian 12 ships OpenSSH 9.2, which lacks the un-suffixed sntrup761x25519-sha512 that policy
# version 3 lists, so version 2 is the newest one a Debian 12 host can pass.
_HARDENED_KEX = (
    SNTRUP,
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    GEX,
)
_HARDENED_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-gcm@openssh.com",
    "aes128-ctr",
)
_HARDENED_MACS = (
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "umac-128-etm@openssh.com",
)


@dataclass(frozen=True)
class CryptoProfile:
    """The algorithm lists rendered into sshd_config, plus what the host keys must be."""

    name: str
    policy: str  # the ssh-audit policy this profile is written to pass ("" for compatible)
    kex: tuple[str, ...]
    ciphers: tuple[str, ...]
    macs: tuple[str, ...]
    host_key_algorithms: tuple[str, ...] = _HOST_KEY_ALGORITHMS
    rsa_host_key_bits: int = 3072  # at least this many (compatible) or exactly (hardened)
    rsa_exact: bool = False
    min_modulus_bits: int = 3072


_HARDENED_POLICIES: dict[tuple[str, str], CryptoProfile] = {
    ("debian", "12"): CryptoProfile(
        "hardened", "Hardened Debian 12 (version 2)", _HARDENED_KEX, _HARDENED_CIPHERS,
        _HARDENED_MACS, rsa_host_key_bits=4096, rsa_exact=True,
    ),
    ("ubuntu", "22.04"): CryptoProfile(
        "hardened", "Hardened Ubuntu Server 22.04 LTS (version 6)", _HARDENED_KEX,
        _HARDENED_CIPHERS, _HARDENED_MACS, rsa_host_key_bits=4096, rsa_exact=True,
    ),
    ("ubuntu", "24.04"): CryptoProfile(
        "hardened", "Hardened Ubuntu Server 24.04 LTS (version 2)",
        (SNTRUP, "curve25519-sha256", "curve25519-sha256@libssh.org",
         "diffie-hellman-group18-sha512", GEX, "diffie-hellman-group16-sha512"),
        _HARDENED_CIPHERS,
        ("hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
         "umac-128-etm@openssh.com"),
        rsa_host_key_bits=4096, rsa_exact=True,
    ),
    ("amzn", "2023"): CryptoProfile(
        "hardened", "Hardened Amazon Linux 2023 (version 2)", _HARDENED_KEX, _HARDENED_CIPHERS,
        _HARDENED_MACS, rsa_host_key_bits=4096, rsa_exact=True,
    ),
}  # fmt: skip


def _supported(names: tuple[str, ...], openssh: tuple[int, int]) -> tuple[str, ...]:
    """Drop what this OpenSSH does not know: sshd -t refuses unknown algorithm names."""
    if openssh < (8, 5):
        names = tuple(n for n in names if n != SNTRUP)
    return names


def profile(mode: str, os_id: str, os_version: str, openssh: tuple[int, int]) -> CryptoProfile:
    """The profile for `bastion.ssh_crypto` on this host.

    An OS without a built-in ssh-audit policy gets the hardened lists of the closest one
    (they are identical for OpenSSH 8.5 to 9.5) and no policy name to check against.
    """
    if mode == "hardened":
        chosen = _HARDENED_POLICIES.get((os_id, os_version))
        if chosen is None:
            chosen = CryptoProfile(
                "hardened", "", _HARDENED_KEX, _HARDENED_CIPHERS, _HARDENED_MACS,
                rsa_host_key_bits=4096, rsa_exact=True,
            )  # fmt: skip
        return CryptoProfile(
            chosen.name, chosen.policy, _supported(chosen.kex, openssh), chosen.ciphers,
            chosen.macs, chosen.host_key_algorithms, chosen.rsa_host_key_bits, chosen.rsa_exact,
        )  # fmt: skip
    return CryptoProfile(
        "compatible",
        "",
        _supported(_COMPATIBLE_KEX, openssh),
        _COMPATIBLE_CIPHERS,
        _COMPATIBLE_MACS,
    )


def without_group_exchange(chosen: CryptoProfile) -> CryptoProfile:
    """When no modulus of the required size exists, group exchange would fall back to 2048."""
    return CryptoProfile(
        chosen.name, chosen.policy, tuple(k for k in chosen.kex if k != GEX), chosen.ciphers,
        chosen.macs, chosen.host_key_algorithms, chosen.rsa_host_key_bits, chosen.rsa_exact,
        chosen.min_modulus_bits,
    )  # fmt: skip


def user_key_algorithms() -> tuple[str, ...]:
    """What the tunnel and admin keys may be: ed25519, ECDSA and RSA with SHA-2 signatures."""
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
    return names
