"""Record what bastion's facts script answers on a freshly booted host of each Debian release.

    .venv/bin/python -m tests.host.recorded.capture                  # debian-13, -12, -11
    .venv/bin/python -m tests.host.recorded.capture --os debian-12   # one release

As root, from the repository. For each release it starts a lab (tests/lab: the release's
own root filesystem from Debian's registry, booted with its own systemd, as cloud-init
leaves an EC2 instance: admin `admin` with passwordless sudo, Debian's sshd_config), logs
in as the admin exactly as `bastion plan` does and runs the facts script through sudo with
the tunnel user `dbtcloud`, then writes its whole output to `debian<VERSION_ID>.txt` beside
this file. The output names the lab's own addresses (10.231.x.y) and the host's fresh host
keys; nothing else in it is specific to the run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bastion.config.settings import load
from bastion.host.connection import open_admin
from bastion.host.fact_sections import facts_script
from tests.host.conftest import write_lab_config
from tests.lab.cache import RELEASES
from tests.lab.lab import running_lab

HERE = Path(__file__).parent
TUNNEL_USER = "dbtcloud"


def capture(os_name: str) -> Path:
    with running_lab("cap", with_aws=False, os_name=os_name) as lab, tempfile.TemporaryDirectory() as folder:
        settings = load(write_lab_config(lab, Path(folder)), environ={})
        with open_admin(settings, lab.bastion_address) as conn:
            result = conn.sudo_script(
                facts_script(), '"$SSH_CONNECTION"', TUNNEL_USER, settings.bastion.admin_user,
                lab.bastion_address, "0", timeout=120,
            )  # fmt: skip
        if result.exited != 0:
            raise SystemExit(f"{os_name}: the facts script failed: {result.stderr.strip()[:300]}")
        version = lab.host_exec(". /etc/os-release && echo $VERSION_ID").stdout.strip()
    target = HERE / f"debian{version}.txt"
    target.write_text(result.stdout, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.host.recorded.capture", description=__doc__)
    parser.add_argument("--os", action="append", choices=list(RELEASES), default=[])
    args = parser.parse_args(argv)
    for os_name in args.os or list(RELEASES):
        print(f"{os_name} -> {capture(os_name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
