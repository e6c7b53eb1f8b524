"""The AWS stage of the pipeline: read facts, plan, and (for `provision`) apply the plan.

`plan_aws` and `apply_aws` build the same steps from the same facts; only `apply_aws`
runs them. After a new or restarted host, the run waits for `running` and then for the
SSH port to answer, which is what the next stage (configure) needs.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.aws import tags as t
from bastion.aws.apply import Runner
from bastion.aws.discover import WarehouseLocation, choose_public_subnet, discover_warehouse
from bastion.aws.facts import AwsFacts, read_facts
from bastion.aws.gateway import AwsGateway
from bastion.aws.plan import Desired, ingress_rules, moving_ssh_port, plan_steps, to_plan
from bastion.changes import Plan
from bastion.errors import ConfigError, SshError
from bastion.progress import Progress

if TYPE_CHECKING:
    import boto3

    from bastion.config.settings import Settings

PortProbe = Callable[[str, int, float], bool]
SSH_WAIT_SECONDS = 300.0
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def tcp_probe(host: str, port: int, timeout: float) -> bool:
    """True when a TCP connection to host:port opens within `timeout`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def plan_aws(
    settings: Settings, session: boto3.Session, *, probe: PortProbe = tcp_probe
) -> tuple[Plan, AwsFacts]:
    """What `provision` would change, read-only; a newer AMI behind ssm: is a notice."""
    if settings.bastion.provider != "aws":
        return Plan(), _existing(settings, session)
    gateway = AwsGateway(session)
    desired, facts, notices = _prepare(settings, gateway)
    answers = _new_port_answers(settings, desired, facts, probe)
    plan = to_plan(plan_steps(desired, facts, new_port_answers=answers))
    plan.notices.extend(notices)
    return plan, facts


def confirm_ssh_port(session: boto3.Session, facts: AwsFacts, port: int) -> None:
    """Record that sshd answers (and the tunnel verified) on `port`: the old port may close."""
    if facts.security_group_id is None:
        raise ConfigError("there is no bastion security group to record the SSH port on")
    AwsGateway(session).create_tags(facts.security_group_id, {t.SSH_PORT_TAG: str(port)})
    facts.ssh_port = port


def apply_aws(
    settings: Settings,
    session: boto3.Session,
    progress: Progress,
    *,
    replace: bool = False,
    probe: PortProbe = tcp_probe,
    ssh_wait: float = SSH_WAIT_SECONDS,
    close_old_port: bool = True,
) -> tuple[Plan, AwsFacts]:
    """Make AWS match the config; the returned Plan holds the changes made.

    `close_old_port=False` (up): during an ssh_port change the old port stays open even when
    sshd answers on the new one, until `confirm_ssh_port` records a verified tunnel there.
    """
    if settings.bastion.provider != "aws":
        return Plan(), _existing(settings, session)
    gateway = AwsGateway(session)
    with progress.status("reading AWS"):
        desired, facts, notices = _prepare(settings, gateway)
    answers = close_old_port and _new_port_answers(settings, desired, facts, probe)
    steps = plan_steps(desired, facts, replace=replace, new_port_answers=answers)
    runner = Runner(gateway, progress)
    runner.run(steps)
    plan = Plan(changes=runner.made, notices=[*notices, *runner.notices])
    plan.notices.extend(f"not changed: {s.change.detail}" for s in steps if s.op == "needs_replace")
    if runner.made:  # re-read what changed; a no-change run keeps the facts it has
        after = read_facts(gateway, settings.name, _location(facts), desired.subnet_id)
    else:
        after = facts
    after.latest_ami = desired.ami
    if "instance" in runner.ids:
        host = settings.bastion.address or after.public_ip or ""
        wait_for_port(host, settings.bastion.ssh_port, progress, probe=probe, timeout=ssh_wait)
    return plan, after


def status_aws(settings: Settings, session: boto3.Session) -> AwsFacts:
    """What exists now, read-only."""
    if settings.bastion.provider != "aws":
        return _existing(settings, session)
    gateway = AwsGateway(session)
    location = discover_warehouse(settings, gateway)
    facts = read_facts(gateway, settings.name, location, settings.bastion.subnet_id or None)
    return facts


def record_host_key(session: boto3.Session, facts: AwsFacts, fingerprint: str) -> None:
    """Pin the host key in the instance's tags, so a fresh runner can check it."""
    if facts.instance_id is None:
        raise ConfigError("there is no bastion instance to record a host key on")
    AwsGateway(session).create_tags(facts.instance_id, {t.HOST_KEY_TAG: fingerprint})
    facts.host_key_tag = fingerprint


def console_host_keys(session: boto3.Session, instance_id: str) -> list[str]:
    """The SHA256 host key fingerprints cloud-init printed to the console ([] when none yet)."""
    return host_key_fingerprints(AwsGateway(session).console_output(instance_id))


def host_key_fingerprints(console: str) -> list[str]:
    """Fingerprints inside cloud-init's BEGIN/END SSH HOST KEY FINGERPRINTS block only."""
    begin, end = (
        "-----BEGIN SSH HOST KEY FINGERPRINTS-----",
        "-----END SSH HOST KEY FINGERPRINTS-----",
    )
    found: list[str] = []
    inside = False
    for line in console.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            found.extend(f for f in _FINGERPRINT.findall(line) if f not in found)
    return found


def wait_for_port(
    host: str,
    port: int,
    progress: Progress,
    *,
    probe: PortProbe = tcp_probe,
    timeout: float = SSH_WAIT_SECONDS,
    interval: float = 2.0,
) -> None:
    """Wait until sshd answers: minutes sooner than EC2's instance_status_ok."""
    if not host:
        raise SshError(
            "the bastion has no address to reach yet (no Elastic IP, no bastion.address)"
        )
    deadline = time.monotonic() + timeout
    with progress.status(f"waiting for SSH on {host}:{port}"):
        while not probe(host, port, min(5.0, max(timeout, 0.1))):
            if time.monotonic() >= deadline:
                raise SshError(
                    f"{host}:{port} did not answer within {timeout:.0f}s",
                    hint="check that bastion.admin_cidrs holds the address you connect from, "
                    "and the subnet's route to the internet gateway",
                )
            time.sleep(interval)


def admin_public_key(settings: Settings) -> str:
    """The admin key's public half: KEY.pub beside it, else derived from the private key."""
    path = settings.bastion.admin_key
    public = Path(f"{path}.pub")
    if public.exists():
        text = public.read_text(encoding="utf-8").strip()
    else:
        from cryptography.hazmat.primitives import serialization

        try:
            private = serialization.load_ssh_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise ConfigError(
                f"bastion.admin_key: no key at {path}",
                hint="create one with `ssh-keygen -t ed25519 -f <path>` or point admin_key at yours",
            ) from None
        except (ValueError, TypeError):
            raise ConfigError(
                f"bastion.admin_key: cannot read {path} without a passphrase and no {public.name} beside it",
                hint=f"write the public half next to it: ssh-keygen -y -f {path} > {public}",
            ) from None
        text = (
            private.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
    key_type, blob = ([*text.split(), "", ""])[:2]
    return f"{key_type} {blob}"


def resolve_ami(gateway: AwsGateway, ami: str) -> tuple[str, bool]:
    """(AMI id, came from ssm:) for `bastion.ami`."""
    if ami.startswith("ssm:"):
        return gateway.ssm_parameter(ami.removeprefix("ssm:")), True
    return ami, False


def _prepare(settings: Settings, gateway: AwsGateway) -> tuple[Desired, AwsFacts, list[str]]:
    from bastion.config.keys import parse_public_key
    from bastion.vendors.dbt_cloud import cidrs_for

    location = discover_warehouse(settings, gateway)
    if not location.vpc_id:
        raise ConfigError(
            "cannot tell which VPC the warehouse is in",
            hint="set bastion.vpc_id (and warehouse.security_group_id) in bastion.toml",
        )
    subnet_id = choose_public_subnet(gateway, location.vpc_id, settings.bastion.subnet_id)
    ami, from_ssm = resolve_ami(gateway, settings.bastion.ami)
    public_key = admin_public_key(settings)
    try:
        fingerprint = parse_public_key(public_key).fingerprint
    except ValueError as exc:  # InputError is a BastionError, re-raised as is
        raise ConfigError(f"bastion.admin_key: {exc}") from None
    facts = read_facts(gateway, settings.name, location, subnet_id)
    facts.latest_ami = ami
    notices = []
    if from_ssm and facts.ami and facts.ami != ami:
        notices.append(
            f"a newer AMI {ami} is behind {settings.bastion.ami} (the host runs {facts.ami}): "
            "`bastion provision --replace` moves to it and keeps the Elastic IP"
        )
    if facts.ssh_port is not None and facts.ssh_port != settings.bastion.ssh_port:
        notices.append(
            f"ssh_port moves from {facts.ssh_port} to {settings.bastion.ssh_port} in two phases: "
            f"port {facts.ssh_port} stays open until sshd answers on {settings.bastion.ssh_port} "
            "(after `bastion configure`); the next run then closes it"
        )
    if not location.security_group_id:
        notices.append(
            "no warehouse security group known: set warehouse.security_group_id so the "
            "warehouse admits the bastion"
        )
    desired = Desired(
        name=settings.name,
        vpc_id=location.vpc_id,
        subnet_id=subnet_id,
        ssh_port=settings.bastion.ssh_port,
        ingress=ingress_rules(
            settings.bastion.ssh_port,
            cidrs_for(settings.dbt_cloud.regions),
            list(settings.dbt_cloud.extra_cidrs),
            list(settings.bastion.admin_cidrs),
        ),
        warehouse_port=location.endpoint.port,
        warehouse_group_id=location.security_group_id,
        warehouse_host=location.endpoint.host,
        instance_type=settings.bastion.instance_type,
        ami=ami,
        ami_from_ssm=from_ssm,
        admin_public_key=public_key,
        admin_key_fingerprint=fingerprint,
    )
    return desired, facts, notices


def _new_port_answers(
    settings: Settings, desired: Desired, facts: AwsFacts, probe: PortProbe
) -> bool:
    """During an ssh_port change: does sshd already answer on the new port?"""
    if moving_ssh_port(desired, facts) is None:
        return False
    host = settings.bastion.address or facts.public_ip or ""
    return bool(host) and probe(host, desired.ssh_port, 5.0)


def _existing(settings: Settings, session: boto3.Session) -> AwsFacts:
    """provider = existing: no EC2 resources of ours, only the warehouse endpoint."""
    from bastion.aws.discover import resolve_warehouse

    return AwsFacts(warehouse=resolve_warehouse(settings, session))


def _location(facts: AwsFacts) -> WarehouseLocation:
    return WarehouseLocation(facts.warehouse, facts.vpc_id, facts.warehouse_group_id)
