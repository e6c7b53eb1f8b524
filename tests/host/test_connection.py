"""Host key pinning without a network: real paramiko keys through the tool's own policy."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from bastion.errors import SshError
from bastion.host.connection import (
    HostKeyPins,
    KnownHosts,
    _pinning_policy,
    _SeenKey,
    fingerprint,
    host_pattern,
)
from tests.host.conftest import MakeConfig, make_key


def _key(folder: Path, name: str) -> paramiko.PKey:
    return paramiko.PKey.from_path(make_key(folder, name))


def _check(pins: HostKeyPins, key: paramiko.PKey, pattern: str = "203.0.113.10") -> _SeenKey:
    seen = _SeenKey()
    _pinning_policy(pins, pattern, seen).missing_host_key(None, pattern, key)
    return seen


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    import subprocess

    path = make_key(tmp_path, "k")
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True)
    assert fingerprint(_key(tmp_path, "k").asbytes()) == listed.stdout.split()[1]


def test_known_hosts_pattern_for_other_ports() -> None:
    assert host_pattern("203.0.113.10", 22) == "203.0.113.10"
    assert host_pattern("203.0.113.10", 2222) == "[203.0.113.10]:2222"


def test_first_contact_is_learned_when_nothing_is_pinned(tmp_path: Path) -> None:
    known = KnownHosts(tmp_path / "known_hosts")
    key = _key(tmp_path, "host")
    seen = _check(HostKeyPins(known_hosts=known), key)
    assert seen.fingerprint == fingerprint(key.asbytes()) and not seen.pinned
    known.pin("203.0.113.10", seen.key_type, seen.key_data)
    assert known.fingerprints("203.0.113.10") == [seen.fingerprint]
    assert _check(HostKeyPins(known_hosts=known), key).pinned


def test_changed_key_is_refused_naming_both_fingerprints(tmp_path: Path) -> None:
    known = KnownHosts(tmp_path / "known_hosts")
    old, new = _key(tmp_path, "old"), _key(tmp_path, "new")
    known.pin("203.0.113.10", old.get_name(), old.get_base64())
    with pytest.raises(SshError) as caught:
        _check(HostKeyPins(known_hosts=known), new)
    assert fingerprint(old.asbytes()) in caught.value.message
    assert fingerprint(new.asbytes()) in caught.value.message
    assert "--accept-new-host-key" in caught.value.hint
    assert _check(HostKeyPins(known_hosts=known, accept_new=True), new).fingerprint


def test_caller_pins_check_first_contact(tmp_path: Path) -> None:
    """The AWS tag (or cloud-init's console fingerprints) pin a host never seen locally."""
    key, other = _key(tmp_path, "host"), _key(tmp_path, "other")
    tagged = HostKeyPins(
        known_hosts=KnownHosts(tmp_path / "kh"), expected=[fingerprint(key.asbytes())]
    )
    assert _check(tagged, key).fingerprint == fingerprint(key.asbytes())
    with pytest.raises(SshError, match="bastion:host-key"):
        _check(tagged, other)


def test_known_hosts_replacement_keeps_other_hosts(tmp_path: Path) -> None:
    known = KnownHosts(tmp_path / "known_hosts")
    a, b = _key(tmp_path, "a"), _key(tmp_path, "b")
    known.pin("198.51.100.1", a.get_name(), a.get_base64())
    known.pin("203.0.113.10", a.get_name(), a.get_base64())
    known.pin("203.0.113.10", b.get_name(), b.get_base64())
    assert known.fingerprints("198.51.100.1") == [fingerprint(a.asbytes())]
    assert known.fingerprints("203.0.113.10") == [fingerprint(b.asbytes())]


def test_the_fresh_admin_login_opens_its_stream_the_way_the_first_login_did(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    """Through an Instance Connect Endpoint the host's address is a private one that only the
    endpoint reaches: the login that disarms the rollback timer must not dial it directly."""
    from types import SimpleNamespace

    from bastion.host import apply

    dialled: list[tuple[str, int]] = []

    class Dialled(Exception):
        pass

    def through_endpoint(address: str, port: int, timeout: float) -> None:
        dialled.append((address, port))
        raise Dialled

    conn = SimpleNamespace(
        address="127.0.0.9",  # loopback: where the old bug dialled directly, it stays here
        pins=HostKeyPins(known_hosts=KnownHosts(tmp_path / "known_hosts")),
        host_key_fingerprint="SHA256:first",
        dial=through_endpoint,
    )
    with pytest.raises(Dialled):
        apply._fresh_login(make_config(), conn)  # type: ignore[arg-type]
    assert dialled == [("127.0.0.9", 22)]


def test_a_streamed_command_says_it_is_sent_before_its_answer_is_awaited() -> None:
    """`sent` runs once, after the command is sent and before the first read of its answer."""
    import io
    from types import SimpleNamespace

    from bastion.host.connection import Streamed

    said: list[str] = []

    class Channel:
        def __init__(self) -> None:
            self.answers = [b"journal", b""]

        def settimeout(self, seconds: float | None) -> None: ...

        def exec_command(self, command: str) -> None:
            said.append(f"exec {command}")

        def recv(self, size: int) -> bytes:
            said.append("recv")
            return self.answers.pop(0)

        def makefile_stderr(self, mode: str) -> io.BytesIO:
            return io.BytesIO(b"")

        def recv_exit_status(self) -> int:
            return 0

        def close(self) -> None:
            said.append("close")

    transport = SimpleNamespace(open_session=lambda timeout: Channel())
    conn = SimpleNamespace(address="192.0.2.1", commands_run=0,
                           connection=SimpleNamespace(client=SimpleNamespace(get_transport=lambda: transport)))  # fmt: skip
    streamed = Streamed(conn, "journalctl", None, sent=lambda: said.append("sent"))  # type: ignore[arg-type]
    assert list(streamed.chunks()) == [b"journal"]
    assert said == ["exec journalctl", "sent", "recv", "recv", "close"]
    assert streamed.status == 0 and conn.commands_run == 1

    def fails() -> None:  # a hint that fails (a thread that cannot start) ends nothing
        said.append("sent")
        raise RuntimeError("can't start new thread")

    said.clear()
    streamed = Streamed(conn, "journalctl", None, sent=fails)  # type: ignore[arg-type]
    assert list(streamed.chunks()) == [b"journal"]
    assert said == ["exec journalctl", "sent", "recv", "recv", "close"]
