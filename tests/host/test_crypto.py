"""The algorithms chosen from what each Debian release's OpenSSH offers (recorded from the
release), and the hardened lists as ssh-audit's own policies, order included (the policy
compares lists)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from bastion.errors import HostError
from bastion.host.crypto import (
    _POLICIES,
    GEX,
    MLKEM,
    SERVER_ADDED_KEX,
    SNTRUP,
    SNTRUP_OPENSSH,
    HardeningPolicy,
    profile,
    user_key_algorithms,
    without_group_exchange,
)
from bastion.host.facts import SshAlgorithms
from tests.host.releases import RELEASES, release_facts

builtin = pytest.importorskip("ssh_audit.builtin_policies")
kexdb = pytest.importorskip("ssh_audit.ssh2_kexdb")

CURVE25519 = ["curve25519-sha256", "curve25519-sha256@libssh.org"]
GROUPS = ["diffie-hellman-group16-sha512", "diffie-hellman-group18-sha512", GEX]
COMPATIBLE_KEX = {
    "debian13": [MLKEM, SNTRUP, SNTRUP_OPENSSH, *CURVE25519, *GROUPS],
    "debian12": [SNTRUP, SNTRUP_OPENSSH, *CURVE25519, *GROUPS],
    "debian11": [*CURVE25519, *GROUPS],
}
COMPATIBLE_CIPHERS = [
    "chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
    "aes256-ctr", "aes192-ctr", "aes128-ctr",
]  # fmt: skip
COMPATIBLE_MACS = [
    "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "umac-128-etm@openssh.com",
    "hmac-sha2-512", "hmac-sha2-256",
]  # fmt: skip
HOST_KEYS = ["ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"]

# The newest policy ssh-audit 3.9 has for each release, which the release's OpenSSH passes
# (checked with ssh-audit -P against each release's sshd); Debian 11 has none.
HARDENED_POLICY = {
    "debian13": "Hardened Debian 13 (version 1)",
    "debian12": "Hardened Debian 12 (version 3)",
    "debian11": "",
}
# What each release's sshd appended to the key exchange list it sent ssh-audit.
SERVER_ADDED = {
    "debian13": ["ext-info-s", "kex-strict-s-v00@openssh.com"],
    "debian12": ["kex-strict-s-v00@openssh.com"],
}


def _chosen(release: str, mode: str) -> tuple[Any, SshAlgorithms]:
    facts = release_facts(release)
    return profile(mode, facts.os_id, facts.os_version, facts.ssh_algorithms), facts.ssh_algorithms


@pytest.mark.parametrize("release", RELEASES)
def test_compatible_lists_per_release(release: str) -> None:
    chosen, _ = _chosen(release, "compatible")
    assert list(chosen.kex) == COMPATIBLE_KEX[release]
    assert list(chosen.ciphers) == COMPATIBLE_CIPHERS
    assert list(chosen.macs) == COMPATIBLE_MACS
    assert list(chosen.host_key_algorithms) == HOST_KEYS
    assert chosen.policy == ""


@pytest.mark.parametrize("release", RELEASES)
def test_hardened_takes_the_newest_policy_the_release_passes(release: str) -> None:
    chosen, _ = _chosen(release, "hardened")
    assert chosen.policy == HARDENED_POLICY[release]


@pytest.mark.parametrize("release", [r for r in RELEASES if HARDENED_POLICY[r]])
def test_hardened_lists_are_the_policy_lists_exactly(release: str) -> None:
    chosen, _ = _chosen(release, "hardened")
    policy = builtin.BUILTIN_POLICIES[chosen.policy]
    assert list(chosen.kex) + SERVER_ADDED[release] == policy["kex"]
    assert list(chosen.ciphers) == policy["ciphers"]
    assert list(chosen.macs) == policy["macs"]
    _assert_host_keys(chosen, policy)


def test_debian_11_hardened_is_the_fallback_with_no_policy_name() -> None:
    """No built-in policy: the lists the policies for OpenSSH 8.5 to 9.5 share, less the
    sntrup761 that OpenSSH 8.4 lacks."""
    chosen, _ = _chosen("debian11", "hardened")
    assert list(chosen.kex) == [*CURVE25519, *GROUPS]
    shared = builtin.BUILTIN_POLICIES["Hardened Debian 12 (version 2)"]
    assert (list(chosen.ciphers), list(chosen.macs)) == (shared["ciphers"], shared["macs"])
    assert (chosen.rsa_host_key_bits, chosen.rsa_exact) == (4096, True)


@pytest.mark.parametrize("mode", ["compatible", "hardened"])
@pytest.mark.parametrize("release", RELEASES)
def test_nothing_chosen_is_absent_from_what_the_host_offers(release: str, mode: str) -> None:
    chosen, offered = _chosen(release, mode)
    assert set(chosen.kex) <= set(offered.kex)
    assert set(chosen.ciphers) <= set(offered.ciphers)
    assert set(chosen.macs) <= set(offered.macs)
    assert set(chosen.host_key_algorithms) <= set(offered.key_sig)
    assert set(user_key_algorithms(offered)) <= set(offered.key_sig)


@pytest.mark.parametrize("mode", ["compatible", "hardened"])
@pytest.mark.parametrize("release", RELEASES)
def test_mlkem_comes_first_where_the_host_offers_it(release: str, mode: str) -> None:
    chosen, offered = _chosen(release, mode)
    if MLKEM in offered.kex:
        assert chosen.kex[0] == MLKEM
    else:
        assert MLKEM not in chosen.kex


@pytest.mark.parametrize("release", RELEASES)
def test_compatible_has_nothing_ssh_audit_fails(release: str) -> None:
    """ssh-audit's own database: every name known to it, and none with a failure note."""
    chosen, _ = _chosen(release, "compatible")
    db = kexdb.SSH2_KexDB.get_db()
    for table, names in (("kex", chosen.kex), ("enc", chosen.ciphers), ("mac", chosen.macs),
                         ("key", chosen.host_key_algorithms)):  # fmt: skip
        for name in names:
            entry = db[table][name]
            assert len(entry) < 2 or not entry[1], (name, entry[1])


def _newest(base: str) -> str:
    versions = [
        (int(match[1]), name)
        for name in builtin.BUILTIN_POLICIES
        if (match := re.fullmatch(re.escape(base) + r" \(version (\d+)\)", name))
    ]
    return max(versions)[1]


@pytest.mark.parametrize("os_key", sorted(_POLICIES), ids="-".join)
def test_each_os_starts_with_ssh_audits_newest_policy(os_key: tuple[str, str]) -> None:
    """A newer built-in policy in ssh-audit fails this until it is copied in."""
    first = _POLICIES[os_key][0].name
    assert first == _newest(first.rsplit(" (version", 1)[0])


@pytest.mark.parametrize(
    ("os_key", "copied"),
    [(os_key, p) for os_key, policies in sorted(_POLICIES.items()) for p in policies],
    ids=lambda value: value.name if isinstance(value, HardeningPolicy) else "-".join(value),
)
def test_every_copied_policy_matches_ssh_audit(
    os_key: tuple[str, str], copied: HardeningPolicy
) -> None:
    """Copied exactly, and chosen for its OS when the host offers exactly its algorithms."""
    policy = builtin.BUILTIN_POLICIES[copied.name]
    added = [name for name in policy["kex"] if name in SERVER_ADDED_KEX]
    assert list(copied.kex) + added == policy["kex"]  # sshd's own names come last
    assert list(copied.ciphers) == policy["ciphers"]
    assert list(copied.macs) == policy["macs"]
    chosen = profile("hardened", *os_key, _offering(copied))
    assert (chosen.policy, chosen.kex, chosen.ciphers, chosen.macs) == (
        copied.name, copied.kex, copied.ciphers, copied.macs
    )  # fmt: skip
    _assert_host_keys(chosen, policy)


def _offering(policy: HardeningPolicy) -> SshAlgorithms:
    return SshAlgorithms(policy.kex, policy.ciphers, policy.macs, policy.host_key_algorithms)


def _assert_host_keys(chosen: Any, policy: dict[str, Any]) -> None:
    if policy.get("allow_hostkey_subset_and_reordering"):
        assert set(chosen.host_key_algorithms) <= set(policy["host_keys"])
    else:
        assert list(chosen.host_key_algorithms) == policy["host_keys"]
    assert not policy.get("allow_larger_keys") and chosen.rsa_exact
    for rsa in ("rsa-sha2-512", "rsa-sha2-256"):
        assert policy["hostkey_sizes"][rsa]["hostkey_size"] == chosen.rsa_host_key_bits
    if chosen.uses_group_exchange:
        assert policy["dh_modulus_sizes"][GEX] == chosen.min_modulus_bits


def test_debian_12_without_the_new_sntrup_name_passes_version_2() -> None:
    """An older Debian 12 package lacks the un-suffixed name policy version 3 lists."""
    facts = release_facts("debian12")
    older = dataclasses.replace(
        facts.ssh_algorithms, kex=tuple(k for k in facts.ssh_algorithms.kex if k != SNTRUP)
    )
    chosen = profile("hardened", "debian", "12", older)
    assert chosen.policy == "Hardened Debian 12 (version 2)"
    assert (
        list(chosen.kex) + SERVER_ADDED["debian12"]
        == builtin.BUILTIN_POLICIES[chosen.policy]["kex"]
    )


def test_a_host_that_passes_no_policy_of_its_os_gets_no_policy_name() -> None:
    facts = release_facts("debian12")
    without = dataclasses.replace(
        facts.ssh_algorithms,
        kex=tuple(k for k in facts.ssh_algorithms.kex if not k.startswith("sntrup761")),
    )
    chosen = profile("hardened", "debian", "12", without)
    assert chosen.policy == ""
    assert list(chosen.kex) == [*CURVE25519, *GROUPS]


def test_a_host_that_lists_no_algorithms_is_refused() -> None:
    with pytest.raises(HostError, match="ssh -Q kex"):
        profile("compatible", "debian", "12", SshAlgorithms())


def test_debian_13_hardened_has_no_group_exchange_and_12_drops_it_without_moduli() -> None:
    """Debian 13's policy leaves group exchange out (so /etc/ssh/moduli is left alone)."""
    assert not _chosen("debian13", "hardened")[0].uses_group_exchange
    chosen, _ = _chosen("debian12", "hardened")
    assert chosen.uses_group_exchange
    without = without_group_exchange(chosen)
    assert not without.uses_group_exchange
    assert without.kex == tuple(k for k in chosen.kex if k != GEX)
    assert (without.policy, without.ciphers, without.rsa_host_key_bits) == (
        chosen.policy, chosen.ciphers, chosen.rsa_host_key_bits
    )  # fmt: skip


def test_user_key_algorithms_are_those_the_host_knows() -> None:
    offered = SshAlgorithms(key_sig=("ssh-rsa", "rsa-sha2-512", "ssh-ed25519"))
    assert user_key_algorithms(offered) == ("ssh-ed25519", "rsa-sha2-512")
