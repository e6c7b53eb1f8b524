"""sshd's systemd units in the plan: options on sshd's command line are reported with their
source and reset, a socket that starts sshd follows ssh_port through both phases of a move,
automatic updates are started by their timers, and the apply script lets systemd pick it up.

The `systemd` sections are reconstructed from systemd's documented output formats, not
recorded (tests/host/systemd_output.py); the rest is the Debian 12 host recorded on the lab.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from bastion.config.settings import Settings
from bastion.endpoint import Endpoint
from bastion.host.apply import apply_script
from bastion.host.desired import desired_host
from bastion.host.fact_sections import AutomaticUpdates, SystemdUnits, parse_facts
from bastion.host.facts import AutoUpdates, HostFacts
from bastion.host.plan import HostPlan, build_plan
from bastion.host.ports import after_sshd_config, listen_ports, port_move
from bastion.host.rollback import rollback_script
from bastion.host.shell import FUNCTIONS
from bastion.host.sshd_units import run_all
from bastion.host.stage import plan_port_phase_two
from bastion.host.systemd import SshdUnit, SshSocket
from tests.host import systemd_output as out
from tests.host.conftest import MakeConfig, recorded
from tests.host.releases import release_facts

WAREHOUSE = Endpoint("10.0.2.10", 5432)
EIC_ARGV = (
    "/usr/sbin/sshd -D -o AuthorizedKeysCommand /usr/share/ec2-instance-connect/"
    "eic_run_authorized_keys %u %f -o AuthorizedKeysCommandUser ec2-instance-connect $SSHD_OPTS"
)
SERVICE_DROPIN = "/etc/systemd/system/ssh.service.d/zz-dbt-bastion.conf"
SOCKET_DROPIN = "/etc/systemd/system/ssh.socket.d/zz-dbt-bastion.conf"


def host(systemd: str) -> HostFacts:
    """The recorded Debian 12 host, with systemd's answers to the `systemd` fact."""
    facts = parse_facts(recorded("debian12"))
    facts.ssh_algorithms = release_facts("debian12").ssh_algorithms
    SystemdUnits().parse(systemd, facts)
    return facts


def plan(settings: Settings, facts: HostFacts, *, close_old_port: bool = False) -> HostPlan:
    ports = listen_ports(settings, facts, close_old_port=close_old_port)
    return build_plan(settings, facts, WAREHOUSE, listen_ports=ports)


def changes(host_plan: HostPlan) -> dict[str, str]:
    return {c.resource: c.detail for c in host_plan.plan.changes}


def written(host_plan: HostPlan, path: str) -> str:
    line = next(line for line in host_plan.lines if line.startswith(f"put_unit {path} "))
    return base64.b64decode(line.split()[-1]).decode()


def eic_host() -> HostFacts:
    return host(
        out.debian(
            service_show=out.exec_start(EIC_ARGV),
            service_cat=out.DEBIAN_SSH_SERVICE + out.EIC_DROPIN,
        )
    )


def test_options_on_sshd_command_line_are_named_and_reset(make_config: MakeConfig) -> None:
    host_plan = plan(make_config(), eic_host())
    detail = changes(host_plan)["sshd_command_line"]
    dropin = "/usr/lib/systemd/system/ssh.service.d/ec2-instance-connect.conf"
    assert f"-o AuthorizedKeysCommandUser ec2-instance-connect ({dropin})" in detail
    assert "eic_run_authorized_keys %u %f" in detail and SERVICE_DROPIN in detail
    assert written(host_plan, SERVICE_DROPIN).endswith(
        "[Service]\nExecStart=\nExecStart=/usr/sbin/sshd -D\n"
    )
    assert host_plan.restart and host_plan.units == [SERVICE_DROPIN]
    assert host_plan.pickup == ("systemctl daemon-reload", "systemctl restart ssh.service")
    # once restarted, systemd itself must report the clean command line
    assert any("argv[]=/usr/sbin/sshd -D ;" in check for check in host_plan.after)


def test_a_host_whose_command_line_was_reset_plans_nothing_for_it(
    make_config: MakeConfig,
) -> None:
    """What systemd shows after configure: the tool's drop-in last, the command clean (the
    EIC drop-in and SSHD_OPTS are still there, and no longer read)."""
    facts = host(
        out.debian(
            service_show=out.exec_start("/usr/sbin/sshd -D"),
            service_cat=out.DEBIAN_SSH_SERVICE + out.EIC_DROPIN + out.TOOL_DROPIN,
            env='SSHD_OPTS="-o PermitRootLogin=yes"\n',
        )
    )
    host_plan = plan(make_config(), facts)
    assert "sshd_command_line" not in changes(host_plan)
    assert host_plan.units == [] and not host_plan.restart


def test_options_from_the_environment_file_are_reset_the_same_way(
    make_config: MakeConfig,
) -> None:
    facts = host(out.debian(env='SSHD_OPTS="-o PasswordAuthentication=yes"\n'))
    host_plan = plan(make_config(), facts)
    detail = changes(host_plan)["sshd_command_line"]
    assert "-o PasswordAuthentication=yes (SSHD_OPTS in /etc/default/ssh)" in detail
    assert "ExecStart=/usr/sbin/sshd -D\n" in written(host_plan, SERVICE_DROPIN)


def test_a_per_connection_sshd_needs_no_restart(make_config: MakeConfig) -> None:
    template = (
        "# /usr/lib/systemd/system/ssh@.service\n[Service]\nEnvironmentFile=-/etc/default/ssh\n"
        "ExecStart=-/usr/sbin/sshd -i $SSHD_OPTS\nStandardInput=socket\n"
    )
    facts = host(
        out.debian(
            socket=out.socket_block(enabled="enabled", active="active", accept="yes", triggers=""),
            extra=out.unit_block("ssh@.service", "", template),
            env="SSHD_OPTS=-4\n",
        )
    )
    host_plan = plan(make_config(), facts)
    dropin = "/etc/systemd/system/ssh@.service.d/zz-dbt-bastion.conf"
    assert "ExecStart=-/usr/sbin/sshd -i\n" in written(host_plan, dropin)
    assert not host_plan.restart
    assert host_plan.pickup == ("systemctl daemon-reload",)


def test_without_systemd_sshd_reloads_as_before(make_config: MakeConfig) -> None:
    """The recorded Debian 12 host as it would be with another PID 1 (a container's init):
    the `systemd` fact then reports no units."""
    facts = parse_facts(recorded("debian12"))
    facts.ssh_algorithms = release_facts("debian12").ssh_algorithms
    facts = dataclasses.replace(facts, systemd=False, socket_activated=False,
                                ssh_socket=SshSocket(), sshd_unit=SshdUnit())  # fmt: skip
    host_plan = plan(make_config(), facts)
    assert host_plan.pickup == ("systemctl reload ssh",)
    assert changes(host_plan)["sshd_reload"] == "reload ssh.service to pick up the changes"
    assert host_plan.after == [] and host_plan.units == []


def socket_host(ports: tuple[int, ...] = (22,)) -> HostFacts:
    """Debian 13 switched to ssh.socket (no generator: Debian does not ship one)."""
    listen = tuple(f"[::]:{port}" for port in ports)
    return host(
        out.debian(socket=out.socket_block(enabled="enabled", active="active", listen=listen))
    )


def test_a_port_change_moves_the_socket_in_two_phases(make_config: MakeConfig) -> None:
    settings = make_config(ssh_port=2222)

    first = plan(settings, socket_host((22,)))
    assert changes(first)["ssh_socket"] == f"ssh.socket listens on 22 -> 22, 2222 ({SOCKET_DROPIN})"
    assert written(first, SOCKET_DROPIN).endswith(
        "[Socket]\nListenStream=\nListenStream=22\nListenStream=2222\nBindIPv6Only=both\n"
    )
    assert first.pickup == (
        "systemctl daemon-reload",
        "systemctl stop ssh.service",
        "systemctl restart ssh.socket",
        "systemctl start ssh.service",
    )
    assert any("'22 2222 '" in check for check in first.after)

    # phase one done (the socket listens on both), not proven yet: nothing changes
    both = socket_host((22, 2222))
    move = port_move(settings, both)
    assert move is not None and move.new_listening
    assert "ssh_socket" not in changes(plan(settings, both))

    second = plan(settings, both, close_old_port=True)
    assert changes(second)["ssh_socket"].startswith("ssh.socket listens on 22, 2222 -> 2222 ")
    assert "ListenStream=\nListenStream=2222\n" in written(second, SOCKET_DROPIN)

    assert port_move(settings, socket_host((2222,))) is None


def test_the_socket_not_sshd_t_says_where_sshd_listens(make_config: MakeConfig) -> None:
    """sshd's Port lines say 22 and 2222, but the socket hands it 22 alone: phase one is
    not done."""
    facts = dataclasses.replace(socket_host((22,)), sshd={"port": ["22", "2222"]})
    move = port_move(make_config(ssh_port=2222), facts)
    assert move is not None and (move.old, move.new_listening) == ((22,), False)


def test_phase_two_planned_ahead_closes_the_socket_port_too(make_config: MakeConfig) -> None:
    settings = make_config(ssh_port=2222)
    facts = socket_host((22,))
    phase_two = {
        c.resource: c.detail for c in plan_port_phase_two(settings, facts, WAREHOUSE).changes
    }
    assert phase_two["ssh_socket"].startswith("ssh.socket listens on 22, 2222 -> 2222")
    first = desired_host(settings, facts, WAREHOUSE, (22, 2222))
    assert after_sshd_config(facts, first).ssh_socket.ports == (22, 2222)


def test_ubuntu_generator_takes_the_ports_from_sshd_config(make_config: MakeConfig) -> None:
    facts = host(out.ubuntu_2404())
    host_plan = plan(make_config(ssh_port=2222), facts)
    detail = changes(host_plan)["ssh_socket"]
    assert detail == (
        f"ssh.socket listens on 22 -> 22, 2222 ({out.GENERATOR} reads the Port lines of sshd_config)"
    )
    assert host_plan.units == [] and not any(SOCKET_DROPIN in line for line in host_plan.lines)
    assert host_plan.desired is not None and host_plan.desired.effective["port"] == "22 2222"
    assert host_plan.pickup[0] == "systemctl daemon-reload"  # the generator runs then
    # an admin's drop-in overriding the generator: the tool's own drop-in, sorting after it
    admin = (
        out.UBUNTU_2404_SOCKET
        + "\n# /etc/systemd/system/ssh.socket.d/addresses.conf\n[Socket]\nListenStream=\n"
        "ListenStream=22\n"
    )
    overridden = plan(make_config(ssh_port=2222), host(out.ubuntu_2404(cat=admin)))
    assert "ListenStream=2222\n" in written(overridden, SOCKET_DROPIN)


def test_a_socket_on_ssh_port_and_no_options_plan_no_unit_change(
    make_config: MakeConfig,
) -> None:
    host_plan = plan(make_config(), socket_host((22,)))
    assert not {"ssh_socket", "sshd_command_line"} & set(changes(host_plan))
    # a reload re-executes sshd, which then cannot bind the port the socket holds
    assert host_plan.pickup == ("systemctl restart ssh.service",)


def test_the_apply_script_lets_systemd_pick_the_units_up_then_checks(
    make_config: MakeConfig,
) -> None:
    settings = make_config(ssh_port=2222)
    facts = dataclasses.replace(
        socket_host((22,)),
        sshd_unit=eic_host().sshd_unit,
    )
    host_plan = plan(settings, facts)
    script = apply_script(settings, facts, host_plan, "52.45.144.63")
    for shell in ("dash", "bash"):
        result = subprocess.run([shell, "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    pickup = (
        "out=$(systemctl daemon-reload 2>&1 && systemctl stop ssh.service 2>&1 && "
        "systemctl restart ssh.socket 2>&1 && systemctl start ssh.service 2>&1)"
    )
    assert script.count(pickup) == 1
    body = script[script.index(pickup) :]
    assert "argv[]=/usr/sbin/sshd -D ;" in body and "'22 2222 '" in body
    assert script.index(f"put_unit {SERVICE_DROPIN} ") < script.index("\narm ")
    assert script.index(f"put_unit {SOCKET_DROPIN} ") < script.index("\narm ")


def test_the_rollback_puts_the_units_back_and_lets_systemd_pick_them_up() -> None:
    pickup = (
        "systemctl daemon-reload",
        "systemctl stop ssh.service",
        "systemctl restart ssh.socket",
        "systemctl start ssh.service",
    )
    script = rollback_script(run_all(pickup, "6>&- 2>&1"))
    for shell in ("dash", "bash"):
        result = subprocess.run([shell, "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert "prev/units/*.path" in script
    restore = script.index('stage "${p%.path}.file" "$t"')
    assert restore < script.index("out=$(systemctl daemon-reload 6>&- 2>&1 && systemctl stop")


@pytest.mark.parametrize(
    ("updates", "lines"),
    [
        (
            AutoUpdates("apt", True, True, ("apt-daily-upgrade.timer",)),
            ["enable_timer apt-daily-upgrade.timer"],
        ),
        (AutoUpdates("apt", True, False), ["put", "apt-config"]),
        (
            AutoUpdates("apt", False, False, ("apt-daily.timer",)),
            ["apt_install", "put", "apt-config", "enable_timer apt-daily.timer"],
        ),
        (
            AutoUpdates("dnf", True, True, ("dnf-automatic.timer",)),
            ["enable_timer dnf-automatic.timer"],
        ),
        (AutoUpdates("apt", True, True), []),
    ],
)
def test_automatic_updates_change_only_what_is_off(
    make_config: MakeConfig, updates: AutoUpdates, lines: list[str]
) -> None:
    facts = host(out.debian())
    baseline = plan(make_config(), facts)  # the Debian host: installed, on, timers enabled
    assert "auto_updates" not in changes(baseline)
    facts.auto_updates = updates
    host_plan = plan(make_config(), facts)
    added = [line for line in host_plan.lines if line not in baseline.lines]
    assert [line if line.startswith("enable_") else line.split()[0] for line in added] == lines
    assert ("auto_updates" in changes(host_plan)) is bool(lines)
    if updates.timers_off:
        assert "enabled: systemd did not start it" in changes(host_plan)["auto_updates"]


def test_a_recorded_apt_host_reads_its_periodic_settings_through_apt_config() -> None:
    """The recorded Debian 12 section (20auto-upgrades' lines) has the shape of
    `apt-config dump`'s, without a pid1 line: settings on, no timer asked about."""
    facts = parse_facts(recorded("debian12"))
    assert facts.auto_updates.configured and facts.auto_updates.timers_off == ()
    fresh = HostFacts()
    AutomaticUpdates().parse("manager apt\n", fresh)
    assert not fresh.auto_updates.installed and not fresh.auto_updates.configured


@pytest.mark.skipif(os.geteuid() != 0, reason="put_unit chowns the drop-in to root")
def test_put_unit_keeps_for_the_rollback_timer_what_it_replaces(tmp_path: Path) -> None:
    """The apply script's put_unit, in a folder of its own: a drop-in that was there is kept
    as N.file beside N.path (its path); one that was not has a path alone (it is removed)."""
    state, units = tmp_path / "state", tmp_path / "units"
    (state / "prev").mkdir(parents=True)
    (units / "old.d").mkdir(parents=True)
    (units / "old.d" / "x.conf").write_text("before\n")
    content = base64.b64encode(b"after\n").decode()
    script = (
        FUNCTIONS
        + f"STATE={state} RUN={state}/run LOCKED=y GUARDED=y\n"
        + 'mkdir -p "$RUN/files" && : > "$RUN/undo"\n'
        + f"put_unit {units}/old.d/x.conf {content}\nput_unit {units}/new.d/y.conf {content}\n"
        + 'echo "UNITS=$UNITS"\n'
    )
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "UNITS=y" in done.stdout
    kept = state / "prev" / "units"
    assert sorted(p.name for p in kept.iterdir()) == ["0.file", "0.path", "2.path"]
    assert (kept / "0.file").read_text() == "before\n"
    assert (kept / "0.path").read_text() == f"{units}/old.d/x.conf\n"
    assert (kept / "2.path").read_text() == f"{units}/new.d/y.conf\n"
    assert (units / "new.d" / "y.conf").read_text() == "after\n"
