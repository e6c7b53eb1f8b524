"""One lab bastion for a module of e2e tests: its config (with a tunnel key standing in for
dbt Cloud's), the lab's environment, and a pristine host before and after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bastion.tunnel.verify_key import EphemeralKey
from tests.e2e.cli import run_json
from tests.lab import Lab, bastion_toml, lab_env


@dataclass
class World:
    lab: Lab
    name: str
    folder: Path
    config: Path
    tunnel_key: EphemeralKey  # stands in for dbt Cloud's key

    def write(self, ssh_port: int) -> None:
        public = self.tunnel_key.public_line
        self.config.write_text(
            bastion_toml(
                self.lab,
                self.name,
                extra_bastion=f"ssh_port = {ssh_port}",
                extra=f'[tunnel]\npublic_keys = ["{public}"]\n',
            )
        )


@contextmanager
def lab_world(lab: Lab, tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[World]:
    """A config for bastion `name` on port 22, the lab's env set, the host restarted around."""
    lab.restart_host()
    folder = tmp_path_factory.mktemp(name)
    found = World(lab, name, folder, folder / "bastion.toml", EphemeralKey.generate(name))
    found.write(22)
    patch = pytest.MonkeyPatch()
    for key, value in lab_env(lab).items():
        patch.setenv(key, value)
    try:
        yield found
    finally:
        patch.undo()
        lab.restart_host()


def bastion(
    world: World, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    """`bastion ARGS --json` on the world's config: the exit code and the JSON document."""
    return run_json(world.config, capsys, *args)
