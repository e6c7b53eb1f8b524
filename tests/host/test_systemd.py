"""What systemd will run, from `systemctl` output: sshd's command line and where each option
comes from, the socket that starts sshd and its ports, the timers of automatic updates.

The samples are reconstructed from systemd's documented output formats, not recorded on a
host (tests/host/systemd_output.py says from what).
"""

from __future__ import annotations

import pytest

from bastion.host.fact_sections import AutomaticUpdates, SystemdUnits
from bastion.host.facts import HostFacts
from bastion.host.systemd import (
    ExecCommand,
    parse_exec,
    parse_systemd,
    parse_unit_files,
    split_options,
)
from tests.host import systemd_output as out


def test_exec_start_as_systemctl_show_prints_it() -> None:
    # reconstructed from systemd's documented format (systemctl-show.c), not recorded
    command = parse_exec(out.exec_start("/usr/sbin/sshd -D $SSHD_OPTS").partition("=")[2])
    assert command == ExecCommand("/usr/sbin/sshd", ("/usr/sbin/sshd", "-D", "$SSHD_OPTS"))
    ignored = parse_exec(out.exec_start("/usr/sbin/sshd -i", ignore="yes", running=False))
    assert ignored is not None and ignored.ignore_errors
    # ExecStartEx= names its prefixes as flags
    ex = parse_exec(
        "{ path=/usr/sbin/sshd ; argv[]=/usr/sbin/sshd -i ; flags=ignore-failure ; "
        "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"
    )
    assert ex is not None and ex.ignore_errors and ex.line == "-/usr/sbin/sshd -i"
    assert parse_exec("[not set]") is None


def test_unit_files_as_systemctl_cat_prints_them() -> None:
    files = parse_unit_files(out.DEBIAN_SSH_SERVICE + out.EIC_DROPIN)
    assert [f.path for f in files] == [
        "/usr/lib/systemd/system/ssh.service",
        "/usr/lib/systemd/system/ssh.service.d/ec2-instance-connect.conf",
    ]
    assert files[0].values("Service", "ExecStart") == ["/usr/sbin/sshd -D $SSHD_OPTS"]
    assert files[0].values("Install", "Alias") == ["sshd.service"]
    # `ExecStart=` empties the list; a trailing backslash continues the line
    assert files[1].values("Service", "ExecStart") == [
        "",
        '/usr/sbin/sshd -D -o "AuthorizedKeysCommand /usr/share/ec2-instance-connect/'
        'eic_run_authorized_keys %%u %%f" -o "AuthorizedKeysCommandUser ec2-instance-connect"'
        " $SSHD_OPTS",
    ]


@pytest.mark.parametrize(
    ("words", "options", "kept"),
    [
        ("-D $SSHD_OPTS", [], ["-D"]),
        ("-i", [], ["-i"]),
        ("-De", [], ["-D", "-e"]),
        ("-4D", ["-4"], ["-D"]),  # a flag that matters, beside one that does not
        ("-D -oPermitRootLogin=yes", ["-oPermitRootLogin=yes"], ["-D"]),
        ("-D -p 2222 -f /etc/ssh/other", ["-p 2222", "-f /etc/ssh/other"], ["-D"]),
        (  # `systemctl show` lost the quotes: the words after -o belong to it
            "-D -o AuthorizedKeysCommand /opt/aws/bin/eic_run_authorized_keys %u %f $OPTIONS",
            ["-o AuthorizedKeysCommand /opt/aws/bin/eic_run_authorized_keys %u %f"],
            ["-D"],
        ),
    ],
)
def test_options_are_told_from_the_flags_that_set_nothing(
    words: str, options: list[str], kept: list[str]
) -> None:
    assert split_options(words.split()) == (options, kept)


def test_a_debian_host_runs_sshd_without_options() -> None:
    units = parse_systemd(out.debian())
    assert units.running
    assert units.sshd.name == "ssh.service"
    assert units.sshd.options == ()
    assert not units.socket.in_use and units.socket.ports == (22,)


def test_eic_options_are_named_with_the_drop_in_that_adds_them() -> None:
    units = parse_systemd(
        out.debian(
            service_show=out.exec_start(
                "/usr/sbin/sshd -D -o AuthorizedKeysCommand /usr/share/ec2-instance-connect/"
                "eic_run_authorized_keys %u %f -o AuthorizedKeysCommandUser ec2-instance-connect"
                " $SSHD_OPTS"
            ),
            service_cat=out.DEBIAN_SSH_SERVICE + out.EIC_DROPIN,
        )
    )
    dropin = "/usr/lib/systemd/system/ssh.service.d/ec2-instance-connect.conf"
    assert [(o.text, o.source) for o in units.sshd.options] == [
        (
            "-o AuthorizedKeysCommand /usr/share/ec2-instance-connect/eic_run_authorized_keys"
            " %u %f",
            dropin,
        ),
        ("-o AuthorizedKeysCommandUser ec2-instance-connect", dropin),
    ]
    clean = units.sshd.clean_command()
    assert clean is not None and clean.line == "/usr/sbin/sshd -D"


def test_sshd_opts_of_the_environment_file_count_when_the_command_line_names_them() -> None:
    text = out.debian(env='# set by hand\nSSHD_OPTS="-o PermitRootLogin=yes -p 2200"\n')
    options = parse_systemd(text).sshd.options
    assert [(o.text, o.source) for o in options] == [
        ("-o PermitRootLogin=yes", "SSHD_OPTS in /etc/default/ssh"),
        ("-p 2200", "SSHD_OPTS in /etc/default/ssh"),
    ]
    # a command line without $SSHD_OPTS (the tool's own drop-in) does not read it
    cleaned = out.debian(
        service_show=out.exec_start("/usr/sbin/sshd -D"),
        service_cat=out.DEBIAN_SSH_SERVICE + out.TOOL_DROPIN,
        env='SSHD_OPTS="-o PermitRootLogin=yes"\n',
    )
    assert parse_systemd(cleaned).sshd.options == ()


def test_environment_of_a_drop_in_counts_unless_the_file_sets_it_too() -> None:
    dropin = (
        "\n# /etc/systemd/system/ssh.service.d/opts.conf\n[Service]\n"
        'Environment="SSHD_OPTS=-o PasswordAuthentication=yes" EXTRA=-4\n'
    )
    show = out.exec_start("/usr/sbin/sshd -D $SSHD_OPTS ${EXTRA}")
    text = out.debian(service_show=show, service_cat=out.DEBIAN_SSH_SERVICE + dropin, env="")
    assert [(o.text, o.source) for o in parse_systemd(text).sshd.options] == [
        (
            "-o PasswordAuthentication=yes",
            "Environment=SSHD_OPTS in /etc/systemd/system/ssh.service.d/opts.conf",
        ),
        ("-4", "Environment=EXTRA in /etc/systemd/system/ssh.service.d/opts.conf"),
    ]
    overridden = out.debian(
        service_show=show, service_cat=out.DEBIAN_SSH_SERVICE + dropin, env="SSHD_OPTS=\n"
    )
    assert [o.text for o in parse_systemd(overridden).sshd.options] == ["-4"]


def test_ubuntu_socket_activation_and_its_generator() -> None:
    units = parse_systemd(out.ubuntu_2404())
    socket = units.socket
    assert socket.in_use and socket.service == "ssh.service"
    assert socket.ports == (22,)  # 0.0.0.0:22 and [::]:22
    assert socket.generator == out.GENERATOR
    assert socket.ports_from_sshd_config
    assert units.sshd.name == "ssh.service"
    # an admin's drop-in overriding the generator's: the generator no longer decides
    admin = (
        out.UBUNTU_2404_SOCKET
        + "\n# /etc/systemd/system/ssh.socket.d/addresses.conf\n[Socket]\nListenStream=\n"
        "ListenStream=2200\n"
    )
    assert not parse_systemd(out.ubuntu_2404(cat=admin)).socket.ports_from_sshd_config


def test_debian_switched_to_its_socket() -> None:
    socket = out.socket_block(enabled="enabled", active="active")
    units = parse_systemd(out.debian(socket=socket))
    assert units.socket.in_use and units.socket.generator == ""
    assert not units.socket.ports_from_sshd_config
    assert units.sshd.name == "ssh.service"


def test_a_per_connection_socket_runs_the_template() -> None:
    """Accept=yes: one sshd per connection from ssh@.service, which `systemctl show`
    cannot load (a template): its ExecStart= is read from `systemctl cat`."""
    template = (
        "# /usr/lib/systemd/system/ssh@.service\n[Service]\nEnvironmentFile=-/etc/default/ssh\n"
        "ExecStart=-/usr/sbin/sshd -i $SSHD_OPTS\nStandardInput=socket\n"
        "\n# /etc/systemd/system/ssh@.service.d/eic.conf\n[Service]\nExecStart=\n"
        'ExecStart=-/usr/sbin/sshd -i -o "AuthorizedKeysCommand /x %%u" $SSHD_OPTS\n'
    )
    text = out.debian(
        socket=out.socket_block(enabled="enabled", active="active", accept="yes", triggers=""),
        extra=out.unit_block("ssh@.service", "", template),
    )
    sshd = parse_systemd(text).sshd
    assert sshd.name == "ssh@.service" and sshd.per_connection
    assert [(o.text, o.source) for o in sshd.options] == [
        ("-o AuthorizedKeysCommand /x %u", "/etc/systemd/system/ssh@.service.d/eic.conf")
    ]
    clean = sshd.clean_command()
    assert clean is not None and clean.line == "-/usr/sbin/sshd -i"
    assert sshd.dropin == "/etc/systemd/system/ssh@.service.d/zz-dbt-bastion.conf"


def test_amazon_linux_eic_on_sshd_service_and_an_unused_socket() -> None:
    units = parse_systemd(out.AL2023)
    assert units.socket.name == "sshd.socket" and not units.socket.in_use
    assert units.sshd.name == "sshd.service"
    assert [o.source for o in units.sshd.options] == [
        "/usr/lib/systemd/system/sshd.service.d/ec2-instance-connect.conf"
    ] * 2


def test_without_systemd_as_pid_1_nothing_is_read_from_it() -> None:
    facts = HostFacts()
    SystemdUnits().parse("@@pid1 init\n@@env /etc/default/ssh\nSSHD_OPTS=-p 2200\n", facts)
    assert not facts.systemd and not facts.socket_activated
    assert facts.sshd_unit.name == "" and facts.sshd_unit.options == ()


def test_socket_activation_needs_systemd_to_say_so() -> None:
    facts = HostFacts()
    SystemdUnits().parse(out.ubuntu_2404(), facts)
    assert facts.systemd and facts.socket_activated
    SystemdUnits().parse(out.debian(), facts)
    assert not facts.socket_activated


# `apt-config dump` and `systemctl is-enabled` as they print (reconstructed, not recorded)
APT_ON = (
    "pid1 systemd\nmanager apt\nstatus install ok installed\n"
    'apt APT::Periodic::Update-Package-Lists "1";\napt APT::Periodic::Unattended-Upgrade "1";\n'
)


@pytest.mark.parametrize(
    ("text", "configured", "timers_off"),
    [
        (
            APT_ON + "timer apt-daily.timer enabled\ntimer apt-daily-upgrade.timer enabled\n",
            True,
            (),
        ),
        (
            APT_ON + "timer apt-daily.timer enabled\ntimer apt-daily-upgrade.timer disabled\n",
            True,
            ("apt-daily-upgrade.timer",),
        ),
        (
            APT_ON + "timer apt-daily.timer masked\ntimer apt-daily-upgrade.timer\n",
            True,
            ("apt-daily.timer", "apt-daily-upgrade.timer"),
        ),
        (  # a later file of apt.conf.d turns it off: apt-config shows the last value
            APT_ON.replace('Upgrade "1"', 'Upgrade "0"')
            + "timer apt-daily.timer enabled\ntimer apt-daily-upgrade.timer enabled\n",
            False,
            (),
        ),
        (
            APT_ON + 'apt APT::Periodic::Enable "0";\ntimer apt-daily.timer enabled\n'
            "timer apt-daily-upgrade.timer enabled\n",
            False,
            (),
        ),
        (  # without systemd (cron's apt-compat runs it) no timer is asked about
            APT_ON.replace("pid1 systemd\n", "") + "timer apt-daily.timer disabled\n",
            True,
            (),
        ),
    ],
)
def test_apt_updates_are_judged_from_what_apt_and_systemd_will_run(
    text: str, configured: bool, timers_off: tuple[str, ...]
) -> None:
    facts = HostFacts()
    AutomaticUpdates().parse(text, facts)
    updates = facts.auto_updates
    assert (updates.manager, updates.installed) == ("apt", True)
    assert (updates.configured, updates.timers_off) == (configured, timers_off)
    assert updates.enabled is (configured and not timers_off)


@pytest.mark.parametrize(
    ("timers", "apply", "configured", "timers_off"),
    [
        ("dnf-automatic.timer enabled", "yes", True, ()),
        ("dnf-automatic.timer disabled", "yes", True, ("dnf-automatic.timer",)),
        ("dnf-automatic.timer enabled", "no", False, ()),
        ("dnf-automatic-install.timer enabled", "no", True, ()),  # it applies them itself
    ],
)
def test_dnf_automatic_is_judged_by_its_timer(
    timers: str, apply: str, configured: bool, timers_off: tuple[str, ...]
) -> None:
    facts = HostFacts()
    AutomaticUpdates().parse(
        f"pid1 systemd\nmanager dnf\nstatus install ok installed\ndnf apply_updates = {apply}\n"
        f"timer {timers}\n",
        facts,
    )
    assert (facts.auto_updates.configured, facts.auto_updates.timers_off) == (
        configured,
        timers_off,
    )


def test_names_that_are_not_unit_names_are_left_alone() -> None:
    """Unit names end up in paths and shell lines: anything but a plain name is not used."""
    socket = out.socket_block(enabled="enabled", active="active", triggers="ssh';reboot;'.service")
    units = parse_systemd(out.debian(socket=socket))
    assert units.socket.triggers == () and units.sshd.name == ""
