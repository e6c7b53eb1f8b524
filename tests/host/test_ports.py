"""ssh_port changes as the host sees them: which phase sshd is in, and where to connect."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bastion.aws.facts import AwsFacts
from bastion.endpoint import Endpoint
from bastion.host.apply import apply_script
from bastion.host.connection import KnownHosts, candidate_ports
from bastion.host.desired import desired_host
from bastion.host.fact_sections import parse_facts
from bastion.host.facts import HostFacts
from bastion.host.plan import build_plan
from bastion.host.ports import listen_ports, port_move
from bastion.pipeline.locate import Target
from bastion.pipeline.port_change import pending_move
from tests.host.conftest import MakeConfig, recorded

WAREHOUSE = Endpoint("10.0.2.10", 5432)


def listening(*ports: int) -> HostFacts:
    return dataclasses.replace(
        parse_facts(recorded("debian12")), sshd={"port": [str(p) for p in ports]}
    )


@pytest.mark.parametrize(
    ("have", "close_old", "wanted"),
    [
        ((22,), False, (22, 2222)),  # phase one: both
        ((22, 2222), False, (22, 2222)),  # phase one done, not proven yet: both stay
        ((22, 2222), True, (2222,)),  # phase two
        ((2222,), False, (2222,)),  # no change under way
    ],
)
def test_the_rendered_ports_follow_the_phase(
    make_config: MakeConfig, have: tuple[int, ...], close_old: bool, wanted: tuple[int, ...]
) -> None:
    settings = make_config(ssh_port=2222)
    facts = listening(*have)
    assert listen_ports(settings, facts, close_old_port=close_old) == wanted
    text = desired_host(settings, facts, WAREHOUSE, wanted).sshd_config
    assert [line for line in text.splitlines() if line.startswith("Port ")] == [
        f"Port {p}" for p in wanted
    ]


def test_phase_one_checks_each_port_line_of_the_candidate(make_config: MakeConfig) -> None:
    """sshd -T prints one `port` line per port: the candidate check must look for each."""
    settings = make_config(ssh_port=2222)
    facts = listening(22)
    ports = listen_ports(settings, facts, close_old_port=False)
    host = build_plan(settings, facts, WAREHOUSE, listen_ports=ports)
    assert host.desired is not None and host.desired.effective["port"] == "22 2222"
    script = apply_script(settings, facts, host, "203.0.113.9")
    assert "grep -qixF 'port 22' " in script and "grep -qixF 'port 2222' " in script
    assert "port 22 2222" not in script


def test_a_host_on_its_port_has_no_move(make_config: MakeConfig) -> None:
    assert port_move(make_config(ssh_port=22), listening(22)) is None
    move = port_move(make_config(ssh_port=2222), listening(22, 2222))
    assert move is not None and (move.old, move.new, move.new_listening) == ((22,), 2222, True)


def test_candidate_ports_recorded_then_configured_then_pinned(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    settings = make_config(ssh_port=2222)
    known = KnownHosts(tmp_path / "known_hosts")
    known.pin("10.0.0.5", "ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIDlW")
    known.pin("[10.0.0.5]:2200", "ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIDlW")
    known.pin("[10.0.0.50]:2300", "ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIDlW")
    assert candidate_ports(settings, "10.0.0.5", known, 2100) == [2100, 2222, 22, 2200]
    assert candidate_ports(settings, "10.0.0.6", known) == [2222]


def test_pending_move_counts_either_side(make_config: MakeConfig) -> None:
    settings = make_config(ssh_port=2222)

    def recorded_port(tag: int | None) -> int | None:
        """The port AWS records in the group's tag, as the located target reads it."""
        return Target(settings, WAREHOUSE, "x", AwsFacts(warehouse=WAREHOUSE, ssh_port=tag)).recorded_port

    assert pending_move(settings, recorded_port(2222), listening(2222)) is None
    only_aws = pending_move(settings, recorded_port(22), listening(2222))
    assert only_aws is not None and (only_aws.host, only_aws.aws, only_aws.old) == (
        False,
        True,
        (22,),
    )
    both = pending_move(settings, recorded_port(22), listening(22))
    assert both is not None and (both.host, both.aws, both.old) == (True, True, (22,))
    assert pending_move(settings, None, listening(22, 2200)) is not None
