"""Record sshd's log of a known set of tunnel sessions on each Debian release's real sshd.

    .venv/bin/python -m tests.host.recorded.sessions.capture                  # debian-13, -12, -11
    .venv/bin/python -m tests.host.recorded.sessions.capture --os debian-12   # one release

As root, from the repository. For each release it starts a lab (tests/lab: the release's
own root filesystem booted with its own systemd and journald), configures the host with
`bastion configure` (tunnel user `dbtcloud`, two keys, extra_cidrs the /30 10.231.N.8/30,
and keepalive 2 s x 1 so a silent client is dropped in seconds), then, from the operator
side (tests/host/tunnel_clients.py):

 1. session A (key `dbt-cloud-a`, from the operator 10.231.N.1) opens a forward to the
    warehouse; session B (key `dbt-cloud-b`, from 10.231.N.9, an extra_cidrs address)
    logs in meanwhile; A forwards again, B forwards once, A asks for the host's own port
    22 (refused: PermitOpen), B disconnects while A stays;
 2. a login with `stranger`, a key the host does not hold, from 10.231.N.10 (refused);
 3. session C offers `stranger` first, then logs in with `dbt-cloud-a`, and runs a command
    (nologin answers it);
 4. session D asks for a PTY (refused);
 5. a login with `dbt-cloud-a` from 10.231.N.13, outside every allowed source (refused);
 6. OpenSSH's client logs in with `dbt-cloud-b`, then stops (SIGSTOP) until sshd's
    keepalive ends the session;
 7. A disconnects; session E (`dbt-cloud-b`) logs in and is still open when the log is read.

Then it writes, beside this file:
- `debian<VERSION_ID>.answer.txt`: the whole answer of the tool's log script
  (bastion.host.log_read.SCRIPT, gunzipped, all the log holds, the tunnel user `dbtcloud`), exactly
  what `bastion sessions` reads;
- `debian<VERSION_ID>.journal.txt`: the same journal unfiltered (`journalctl --utc -o
  short-iso-precise -t sshd -t sshd-session`), to show the host's filter keeps every line
  that matters;
- `debian<VERSION_ID>.json`: what the capture did: the keys' fingerprints, the addresses,
  and each action's time span on the operator's clock (the host shares it).

On Debian 11 (OpenSSH 8.4) sshd has no LogVerbose: its log shows no forward that was granted
and no PTY refused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bastion.config.settings import load
from bastion.host.connection import open_admin
from bastion.host.log_read import SCRIPT, answer_lines
from bastion.host.sshd_log import HOST_FILTER
from tests.host.conftest import make_key, write_lab_config
from tests.host.tunnel_clients import (
    Span,
    TunnelSession,
    frozen_session,
    key_fingerprint,
    now,
    refused_login,
)
from tests.lab.cache import RELEASES
from tests.lab.lab import Lab, running_lab

HERE = Path(__file__).parent
USER = "dbtcloud"
KEEPALIVE = (2, 1)  # ClientAliveInterval, ClientAliveCountMax


def _span(span: Span | None) -> list[str]:
    assert span is not None
    return [span.before.isoformat(), span.after.isoformat()]


def capture(os_name: str) -> list[Path]:
    with running_lab("cap", with_aws=False, os_name=os_name) as lab, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keys = {name: make_key(folder, name) for name in ("dbt-cloud-a", "dbt-cloud-b", "stranger")}
        prefix = lab.operator_address.rsplit(".", 1)[0]
        config = write_lab_config(
            lab, folder,
            public_keys=[keys[n].with_suffix(".pub").read_text().strip() for n in ("dbt-cloud-a", "dbt-cloud-b")],
            extra_cidrs=[f"{prefix}.8/30"], interval=KEEPALIVE[0], count=KEEPALIVE[1],
        )  # fmt: skip
        configured = subprocess.run(
            [sys.executable, "-m", "bastion", "configure", "-c", str(config), "--json"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if configured.returncode != 0:
            raise SystemExit(f"{os_name}: bastion configure failed: {configured.stdout.strip()[-300:]}")
        with (
            lab.extra_operator_address(9) as extra,
            lab.extra_operator_address(10) as prober,
            lab.extra_operator_address(13) as outsider,
        ):
            record = _scenario(lab, keys, folder, (extra, prober, outsider))
            record["configured"] = "bastion configure"
            settings = load(config, environ={})
            with open_admin(settings, lab.bastion_address) as conn:
                streamed = conn.sudo_stream(SCRIPT, "", HOST_FILTER, "fields", USER)
                answer = "".join(f"{line}\n" for line in answer_lines(streamed.chunks()))
            journal = lab.host_exec(
                "journalctl --no-pager --utc -o short-iso-precise -t sshd -t sshd-session"
            ).stdout
            record["session_e"]["closed"] = record.pop("_e").close().isoformat()
        version = lab.host_exec(". /etc/os-release && echo $VERSION_ID").stdout.strip()
        record["openssh"] = lab.host_exec("ssh -V 2>&1").stdout.strip()
    written = []
    for suffix, text in (
        ("answer.txt", answer), ("journal.txt", journal),
        ("json", json.dumps(record, indent=1) + "\n"),
    ):  # fmt: skip
        target = HERE / f"debian{version}.{suffix}"
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def _scenario(
    lab: Lab, keys: dict[str, Path], folder: Path, addresses: tuple[str, str, str]
) -> dict[str, Any]:
    """Each refused login comes from an address of its own: OpenSSH 9.8 and later refuse a
    source's next connections for a while after a failed login (PerSourcePenalties)."""
    extra, prober, outsider = addresses
    warehouse = (lab.warehouse_host, lab.warehouse_port)
    record: dict[str, Any] = {
        "user": USER,
        "operator": lab.operator_address,
        "extra": extra,
        "prober": prober,
        "outsider": outsider,
        "warehouse": f"{lab.warehouse_host}:{lab.warehouse_port}",
        "refused_target": f"{lab.bastion_address}:22",
        "keys": {name: key_fingerprint(path) for name, path in keys.items()},
    }
    a = TunnelSession(lab, USER, keys["dbt-cloud-a"]).open()
    assert a.forward(*warehouse)
    b = TunnelSession(lab, USER, keys["dbt-cloud-b"], source=extra).open()
    assert a.forward(*warehouse) and b.forward(*warehouse)
    assert not a.forward(lab.bastion_address, 22)
    b_closed = b.close()
    stranger = refused_login(lab, USER, keys["stranger"], source=prober)
    c = TunnelSession(lab, USER, keys["dbt-cloud-a"], first_try=keys["stranger"]).open()
    c.shell()
    c_closed = c.close()
    d = TunnelSession(lab, USER, keys["dbt-cloud-a"]).open()
    assert not d.pty()
    d_closed = d.close()
    outside = refused_login(lab, USER, keys["dbt-cloud-a"], source=outsider)
    seconds = 12  # sshd gave up after 4 s (OpenSSH 10.0) and 8 s (9.2) in the lab
    frozen = frozen_session(lab, USER, keys["dbt-cloud-b"], folder, seconds)
    a_closed = a.close()
    e = TunnelSession(lab, USER, keys["dbt-cloud-b"]).open()
    record.update(
        session_a={"login": _span(a.login), "port": a.local_port, "closed": a_closed.isoformat(),
                   "forwards": 2, "refused_forwards": 1},
        session_b={"login": _span(b.login), "port": b.local_port, "closed": b_closed.isoformat(),
                   "forwards": 1},
        refused_key={"span": _span(stranger)},
        session_c={"login": _span(c.login), "port": c.local_port, "closed": c_closed.isoformat()},
        session_d={"login": _span(d.login), "port": d.local_port, "closed": d_closed.isoformat()},
        refused_address={"span": _span(outside)},
        session_frozen={"login": _span(frozen)},
        session_e={"login": _span(e.login), "port": e.local_port, "read": now().isoformat()},
        _e=e,
    )  # fmt: skip
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.host.recorded.sessions.capture", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--os", choices=sorted(RELEASES), action="append",
                        help="a release (repeatable); default: every release")  # fmt: skip
    args = parser.parse_args(argv)
    for os_name in args.os or ["debian-13", "debian-12", "debian-11"]:
        for path in capture(os_name):
            print(f"{os_name}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
