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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bastion.aws.apply import Runner, wait_endpoint
from bastion.aws.desired import host_network
from bastion.aws.discover import (
    WarehouseLocation,
    choose_public_subnet,
    discover_warehouse,
    resolve_warehouse,
)
from bastion.aws.facts import AwsFacts, read_facts
from bastion.aws.gateway import AwsGateway
from bastion.aws.instance_connect import open_tunnel
from bastion.aws.plan import (
    Desired,
    Step,
    host_key_steps,
    ingress_rules,
    moving_ssh_port,
    plan_steps,
)
from bastion.changes import Plan
from bastion.config.keys import parse_public_key
from bastion.config.settings import Settings
from bastion.errors import ConfigError, SshError
from bastion.progress import NullProgress, Progress

if TYPE_CHECKING:
    import boto3


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


@dataclass
class AwsPlan:
    """What the AWS stage would do: the steps from one read of AWS, and what they were planned
    from (so the phases of an ssh_port change can be told apart without reading AWS again)."""

    desired: Desired | None
    facts: AwsFacts
    steps: list[Step] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def plan(self) -> Plan:
        return Plan(changes=[s.change for s in self.steps], notices=list(self.notices))

    def port_phase_two(self) -> list[Step]:
        """Phase two of an ssh_port change (the port recorded, the old port's rules revoked):
        what a run whose tunnel verified on the new port does after `steps`."""
        if self.desired is None or moving_ssh_port(self.desired, self.facts) is None:
            return []
        first = {s.change for s in self.steps}
        both = plan_steps(self.desired, self.facts, new_port_answers=True, now=_now())
        return [s for s in both if s.change not in first]


def read_plan(
    settings: Settings,
    session: boto3.Session,
    *,
    replace: bool = False,
    old_port: Literal["keep", "close", "probe"] = "probe",
    probe: PortProbe = tcp_probe,
) -> AwsPlan:
    """Read AWS once and plan. During an ssh_port change the old port's rules are kept
    (`keep`: phase one, as `up` runs it until the tunnel verified on the new port), revoked
    (`close`), or revoked once sshd answers on the new port (`probe`: `provision`)."""
    if settings.bastion.provider != "aws":
        return AwsPlan(None, _existing(settings, session))
    gateway = AwsGateway(session)
    desired, facts, notices = _prepare(settings, gateway)
    answers = old_port == "close" or (
        old_port == "probe" and _new_port_answers(settings, desired, facts, probe)
    )
    steps = plan_steps(desired, facts, replace=replace, new_port_answers=answers, now=_now())
    return AwsPlan(desired, facts, steps, notices)


def plan_aws(
    settings: Settings, session: boto3.Session, *, probe: PortProbe = tcp_probe
) -> tuple[Plan, AwsFacts]:
    """What `provision` would change, read-only; a newer AMI behind ssm: is a notice."""
    planned = read_plan(settings, session, probe=probe)
    return planned.plan, planned.facts


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
    sshd answers on the new one, until a run whose tunnel verified there closes it.
    """
    with progress.status("reading AWS"):
        planned = read_plan(
            settings, session, replace=replace, old_port="probe" if close_old_port else "keep",
            probe=probe,
        )  # fmt: skip
    return run_plan(settings, session, planned, progress, probe=probe, ssh_wait=ssh_wait)


def run_plan(
    settings: Settings,
    session: boto3.Session,
    planned: AwsPlan,
    progress: Progress,
    *,
    steps: list[Step] | None = None,
    probe: PortProbe = tcp_probe,
    ssh_wait: float = SSH_WAIT_SECONDS,
) -> tuple[Plan, AwsFacts]:
    """Run the planned steps (or `steps` planned from it); the returned Plan holds the
    changes made, and the facts are read again when anything changed."""
    if planned.desired is None:
        return Plan(), planned.facts
    todo = planned.steps if steps is None else steps
    gateway = AwsGateway(session)
    runner = Runner(gateway, progress)
    runner.run(todo)
    notices = [*planned.notices, *runner.notices] if steps is None else list(runner.notices)
    plan = Plan(changes=runner.made, notices=notices)
    plan.notices.extend(f"not changed: {s.change.detail}" for s in todo if s.op == "needs_replace")
    endpoint = planned.facts.endpoint
    if endpoint is not None and not endpoint.ready and planned.desired.uses_endpoint:
        wait_endpoint(gateway, progress, endpoint.endpoint_id, ready=True)  # a run cut short
    if runner.made or (endpoint is not None and not endpoint.ready):
        # re-read what changed; a no-change run keeps the facts it has
        after = read_facts(
            gateway, settings.name, _location(planned.facts), planned.desired.subnet_id,
            **_endpoint_args(settings),
        )  # fmt: skip
    else:
        after = planned.facts
    after.latest_ami = planned.desired.ami
    if "instance" in runner.ids:
        if planned.desired.uses_endpoint:
            wait_for_tunnel(session, after, progress, timeout=ssh_wait)
        else:
            host = settings.bastion.address or after.public_ip or ""
            wait_for_port(host, settings.bastion.ssh_port, progress, probe=probe, timeout=ssh_wait)
    return plan, after


def _endpoint_args(settings: Settings) -> dict[str, str]:
    return {"admin_access": settings.bastion.admin_access, "eice_id": settings.bastion.eice_id}


def wait_for_tunnel(
    session: boto3.Session,
    facts: AwsFacts,
    progress: Progress,
    *,
    timeout: float = SSH_WAIT_SECONDS,
    interval: float = 2.0,
) -> None:
    """admin_access = "eice": wait until sshd's banner comes through the endpoint."""
    endpoint, address = facts.endpoint, facts.private_ip
    if endpoint is None or not address:
        raise SshError("the bastion has no Instance Connect Endpoint or private address yet")
    deadline = time.monotonic() + timeout
    with progress.status(f"waiting for SSH on {address}:22 through {endpoint.endpoint_id}"):
        while True:
            try:
                stream = open_tunnel(session, endpoint, address, timeout=5.0)
                try:
                    stream.settimeout(5.0)
                    if stream.recv(4).startswith(b"SSH-"):
                        return
                finally:
                    stream.close()
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise SshError(
                    f"{address}:22 did not answer through {endpoint.endpoint_id} within "
                    f"{timeout:.0f}s",
                    hint="check that the bastion group admits the endpoint's group on port 22 "
                    "(`bastion plan`) and that the instance is running",
                )
            time.sleep(interval)


def _now() -> int:
    """The clock, read here and passed to the planner, which stays a pure function."""
    return int(time.time())


def status_aws(settings: Settings, session: boto3.Session) -> AwsFacts:
    """What exists now, read-only."""
    if settings.bastion.provider != "aws":
        return _existing(settings, session)
    gateway = AwsGateway(session)
    location = discover_warehouse(settings, gateway)
    facts = read_facts(
        gateway, settings.name, location, settings.bastion.subnet_id or None,
        **_endpoint_args(settings),
    )  # fmt: skip
    return facts


def record_host_key(session: boto3.Session, facts: AwsFacts, fingerprint: str) -> None:
    """Pin the host key in the instance's tags, so a fresh runner can check it."""
    if facts.instance_id is None:
        raise ConfigError("there is no bastion instance to record a host key on")
    run_steps(session, host_key_steps(facts, fingerprint), NullProgress())
    facts.host_key_tag = fingerprint


def run_steps(session: boto3.Session, steps: list[Step], progress: Progress) -> Plan:
    """Run steps planned outside the AWS stage (the host-key tag, known once the admin
    logged in); the returned Plan holds the changes made."""
    runner = Runner(AwsGateway(session), progress)
    runner.run(steps)
    return Plan(changes=runner.made, notices=runner.notices)


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
    """(AMI id, came from ssm:) for `bastion.ami_reference` (a named image is ssm:)."""
    if ami.startswith("ssm:"):
        return gateway.ssm_parameter(ami.removeprefix("ssm:")), True
    return ami, False


def _prepare(settings: Settings, gateway: AwsGateway) -> tuple[Desired, AwsFacts, list[str]]:
    location = discover_warehouse(settings, gateway)
    if not location.vpc_id:
        raise ConfigError(
            "cannot tell which VPC the warehouse is in",
            hint="set bastion.vpc_id (and warehouse.security_group_id) in bastion.toml",
        )
    subnet_id = choose_public_subnet(gateway, location.vpc_id, settings.bastion.subnet_id)
    ami, from_ssm = resolve_ami(gateway, settings.bastion.ami_reference)
    public_key = admin_public_key(settings)
    try:
        fingerprint = parse_public_key(public_key).fingerprint
    except ValueError as exc:  # InputError is a BastionError, re-raised as is
        raise ConfigError(f"bastion.admin_key: {exc}") from None
    facts = read_facts(gateway, settings.name, location, subnet_id, **_endpoint_args(settings))
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
        if host_network(location.endpoint.host) == "0.0.0.0/0":
            notices.append(
                f"egress to the warehouse on tcp/{location.endpoint.port} is open to 0.0.0.0/0: "
                f"{location.endpoint.host} is a name, not an address, and no warehouse group is "
                "known to narrow it to; set warehouse.security_group_id"
            )
    desired = Desired(
        name=settings.name,
        vpc_id=location.vpc_id,
        subnet_id=subnet_id,
        ssh_port=settings.bastion.ssh_port,
        ingress=ingress_rules(
            settings.bastion.ssh_port,
            settings.named_sources(),
            [],
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
        admin_access=settings.bastion.admin_access,
        eice_id=settings.bastion.eice_id,
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

    return AwsFacts(warehouse=resolve_warehouse(settings, session))


def _location(facts: AwsFacts) -> WarehouseLocation:
    return WarehouseLocation(facts.warehouse, facts.vpc_id, facts.warehouse_group_id)
