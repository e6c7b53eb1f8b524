"""The hardened lists are ssh-audit's own policies, order included (the policy compares lists)."""

from __future__ import annotations

import pytest

from bastion.host.crypto import _HARDENED_POLICIES, GEX, SNTRUP, profile, without_group_exchange

builtin = pytest.importorskip("ssh_audit.builtin_policies")

# What sshd appends to the KEXINIT list by itself, by version: not configurable, not ours.
SERVER_ADDED = {(9, 6): ["ext-info-s", "kex-strict-s-v00@openssh.com"]}
DEFAULT_ADDED = ["kex-strict-s-v00@openssh.com"]


@pytest.mark.parametrize(("os_key", "chosen"), sorted(_HARDENED_POLICIES.items()))
def test_hardened_profile_matches_ssh_audit_policy(os_key: tuple[str, str], chosen: object) -> None:
    policy = builtin.BUILTIN_POLICIES[chosen.policy]  # type: ignore[attr-defined]
    openssh = {"debian": (9, 2), "amzn": (8, 7)}.get(os_key[0]) or (
        (9, 6) if os_key[1] == "24.04" else (8, 9)
    )
    added = SERVER_ADDED.get(openssh, DEFAULT_ADDED)
    assert list(chosen.kex) + added == policy["kex"]  # type: ignore[attr-defined]
    assert list(chosen.ciphers) == policy["ciphers"]  # type: ignore[attr-defined]
    assert list(chosen.macs) == policy["macs"]  # type: ignore[attr-defined]
    host_keys = policy["host_keys"]
    if policy.get("allow_hostkey_subset_and_reordering"):
        assert set(chosen.host_key_algorithms) <= set(host_keys)  # type: ignore[attr-defined]
    else:
        assert list(chosen.host_key_algorithms) == host_keys  # type: ignore[attr-defined]
    assert policy["hostkey_sizes"]["rsa-sha2-512"]["hostkey_size"] == chosen.rsa_host_key_bits  # type: ignore[attr-defined]
    assert policy["dh_modulus_sizes"][GEX] == chosen.min_modulus_bits  # type: ignore[attr-defined]


def test_debian_12_policy_version_3_needs_a_newer_openssh() -> None:
    """Version 3 lists the un-suffixed sntrup name that only OpenSSH 9.9 offers."""
    newest = builtin.BUILTIN_POLICIES["Hardened Debian 12 (version 3)"]
    assert "sntrup761x25519-sha512" in newest["kex"]


def test_old_openssh_drops_sntrup_and_missing_moduli_drop_group_exchange() -> None:
    old = profile("compatible", "centos", "7", (7, 4))
    assert SNTRUP not in old.kex and "curve25519-sha256" in old.kex
    assert GEX not in without_group_exchange(profile("hardened", "debian", "12", (9, 2))).kex


def test_compatible_has_nothing_ssh_audit_fails() -> None:
    chosen = profile("compatible", "debian", "12", (9, 2))
    weak = ("sha1", "nistp", "group14", "group1-", "cbc", "md5", "ssh-rsa", "umac-64")
    for name in (*chosen.kex, *chosen.ciphers, *chosen.macs, *chosen.host_key_algorithms):
        assert not any(w in name for w in weak), name
