"""An adopted tunnel account's home is the account's, not root's: bastion follows no symbolic
link in it (reading or writing), and the keys it keeps are parsed and validated like any other
key: a line that is not a key is named by its number, never shown nor copied."""

from __future__ import annotations

import pytest

from bastion.errors import HostError
from bastion.host.connection import open_admin
from bastion.tunnel.verify_key import install_verify_key, remove_verify_key
from tests.host.conftest import LabHost, make_key

pytestmark = pytest.mark.lab

HOME = "/home/dbtcloud"
ADOPTED = (
    "groupadd dbtcloud && useradd -m -g dbtcloud -s /bin/bash dbtcloud && "
    f"install -d -m 700 -o dbtcloud -g dbtcloud {HOME}/.ssh"
)
SECRET_DIR = "/srv/not-dbtcloud"
SECRET = "ssh-ed25519 not-a-key secret-9f3a1c"


def _shadow_lines(host: LabHost) -> list[str]:
    return [line for line in host.sh("cat /etc/shadow").splitlines() if line.strip()]


def _watched(host: LabHost) -> str:
    return host.sh(
        f"sha256sum /etc/shadow {SECRET_DIR}/authorized_keys; stat -c '%a %U:%G' /etc/shadow "
        f"{SECRET_DIR}; ls -l {HOME}/.ssh"
    )


LINKS = {
    "authorized_keys to /etc/shadow": f"ln -s /etc/shadow {HOME}/.ssh/authorized_keys",
    ".ssh to another folder": f"rmdir {HOME}/.ssh && ln -s {SECRET_DIR} {HOME}/.ssh",
}


@pytest.mark.parametrize("link", list(LINKS))
@pytest.mark.parametrize("command", ["plan", "configure"])
def test_a_symlink_in_the_tunnel_home_is_refused_and_never_followed(
    lab_host: LabHost, link: str, command: str
) -> None:
    lab_host.sh(
        f"{ADOPTED} && install -d -m 755 {SECRET_DIR} && "
        f"echo '{SECRET}' > {SECRET_DIR}/authorized_keys && {LINKS[link]}"
    )
    before = _watched(lab_host)

    code, document, stderr = lab_host.cli(command)

    output = f"{document}\n{stderr}"
    assert code == 1, output
    assert "symbolic link" in document["error"]["message"]
    for line in _shadow_lines(lab_host):
        assert line not in output, "a line of /etc/shadow was shown"
    assert "secret-9f3a1c" not in output
    assert _watched(lab_host) == before
    assert lab_host.lab.host_exec(f"test -L {HOME}/.ssh/authorized_keys || test -L {HOME}/.ssh")\
        .returncode == 0  # fmt: skip


def test_kept_lines_that_are_not_keys_are_named_by_number_never_shown_or_copied(
    lab_host: LabHost,
) -> None:
    kept = make_key(lab_host.folder, "hand-made").with_suffix(".pub").read_text().strip()
    weak = make_key(lab_host.folder, "weak-rsa", "rsa", 1024).with_suffix(".pub").read_text()
    lines = ["# keys of the old setup", kept, "password hunter2-e7c1", weak.strip(), ""]
    lab_host.sh(f"{ADOPTED} && chown dbtcloud:dbtcloud {HOME}/.ssh")
    result = lab_host.lab.host_exec(
        f"cat > {HOME}/.ssh/authorized_keys && chown dbtcloud: {HOME}/.ssh/authorized_keys",
        input="\n".join(lines),
    )
    assert result.returncode == 0, result.stderr

    code, document, stderr = lab_host.cli("configure")

    assert code == 0, stderr
    output = f"{document}\n{stderr}"
    assert "hunter2" not in output
    notices = " ".join(document["notices"])
    assert "hand-made" in notices, notices
    assert "line 3" in notices and "line 4" in notices, notices
    written = lab_host.sh(f"cat {HOME}/.ssh/authorized_keys")
    assert "hunter2" not in written and "weak-rsa" not in written
    assert kept.split()[1] in written
    assert lab_host.cli("configure")[1]["changed"] is False


VERIFY_FILE = f"{HOME}/.ssh/authorized_keys.verify"


@pytest.mark.parametrize("step", ["install", "remove"])
def test_the_verify_key_file_is_never_written_through_a_link(lab_host: LabHost, step: str) -> None:
    code, _, stderr = lab_host.cli("configure")
    assert code == 0, stderr
    lab_host.sh(f"ln -s /etc/shadow {VERIFY_FILE}")
    before = lab_host.sh("sha256sum /etc/shadow; stat -c '%a %U' /etc/shadow")
    settings = lab_host.settings()
    line = 'restrict,port-forwarding,permitopen="10.0.0.1:5432" ' + (
        make_key(lab_host.folder, "verify").with_suffix(".pub").read_text().strip()
    )
    with open_admin(settings, lab_host.lab.bastion_address) as conn, pytest.raises(HostError):
        if step == "install":
            install_verify_key(conn, settings.first_tunnel.user, line)
        else:
            remove_verify_key(conn, settings.first_tunnel.user, line)
    assert lab_host.sh("sha256sum /etc/shadow; stat -c '%a %U' /etc/shadow") == before
    found = lab_host.sh(f"find {HOME} -type f -exec cat {{}} +")
    for shadow_line in _shadow_lines(lab_host):
        assert shadow_line not in found, "a line of /etc/shadow was copied into the tunnel home"
