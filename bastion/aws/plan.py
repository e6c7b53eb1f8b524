"""Desired vs actual -> the steps `provision` would take, before any API call is made.

The planner is pure: it reads `Desired` and `AwsFacts` and returns `Step`s, each a
`Change` for the report plus the operation that makes it. `plan` shows the changes;
`provision` runs the same steps, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.aws import tags as t
from bastion.aws.desired import Desired, ingress_rules
from bastion.aws.facts import AwsFacts
from bastion.aws.instance_connect import TUNNEL_PORT
from bastion.aws.permissions import ALL_TRAFFIC, SecurityGroupRule
from bastion.changes import Change, Plan
from bastion.templates import render

ENDPOINT_RULE = "instance connect endpoint"

__all__ = [
    "Desired", "Ref", "Step", "host_key_steps", "ingress_rules", "new_step", "plan_steps", "to_plan",
]  # fmt: skip


@dataclass(frozen=True)
class Ref:
    """An id made by an earlier step of the same run (a new group, instance or address)."""

    name: str

    def __str__(self) -> str:
        return f"(new {self.name.replace('_', ' ')})"


@dataclass(frozen=True)
class Step:
    """One change and the operation (in apply.py) that makes it."""

    change: Change
    op: str
    args: Mapping[str, Any] = field(default_factory=dict)


def plan_steps(
    desired: Desired,
    facts: AwsFacts,
    *,
    now: int,
    replace: bool = False,
    new_port_answers: bool = False,
) -> list[Step]:
    """Every step that makes AWS match `desired`, in the order they must run.

    `now` (seconds since the epoch) dates a new group's generation. `new_port_answers`: the
    tunnel works on a changed `ssh_port`, so the port is recorded and the old one may close.
    """
    steps: list[Step] = []
    group: str | Ref = facts.security_group_id or Ref("security_group")
    generation = facts.generation
    tags = t.common_tags(desired.name)

    if facts.security_group_id is None:
        # Seconds since the epoch: never a generation an earlier group of this name used.
        generation = max([now, *(g + 1 for g in facts.used_generations)])
        steps.append(
            new_step(
                "security_group",
                "create",
                f"{desired.group_name} in {desired.vpc_id}",
                "create_security_group",
                name=desired.group_name,
                vpc_id=desired.vpc_id,
                tags={
                    **tags,
                    t.GENERATION_TAG: str(generation),
                    t.SSH_PORT_TAG: str(desired.ssh_port),
                },
            )
        )
        # A new group comes with AWS's default "all traffic" egress (and ::/0 in a dual-stack
        # VPC): planned away in the run that creates it.
        actual_egress = [SecurityGroupRule(ALL_TRAFFIC, -1, -1, "0.0.0.0/0")]
        if facts.vpc_ipv6:
            actual_egress.append(SecurityGroupRule(ALL_TRAFFIC, -1, -1, "::/0"))
    else:
        actual_egress = facts.egress
    ingress = desired.ingress
    old_port = moving_ssh_port(desired, facts)
    if old_port is not None and not new_port_answers:
        # Phase one of a port change: the old port stays open until the new one answers.
        ingress += tuple(replace_port(rule, old_port) for rule in desired.ingress)
    if old_port is not None and new_port_answers and isinstance(group, str):
        # Recorded before the old rules go: a run stopped in between resumes at phase two.
        steps.append(
            new_step(
                "security_group",
                "update",
                f"{group}: ssh_port {old_port} -> {desired.ssh_port} confirmed",
                "set_ssh_port",
                group=group,
                port=desired.ssh_port,
            )
        )
    endpoint_steps, endpoint_groups = _endpoint_steps(desired, facts, group, now)
    ingress += tuple(
        SecurityGroupRule("tcp", TUNNEL_PORT, TUNNEL_PORT, str(source), ENDPOINT_RULE)
        for source in endpoint_groups
    )
    steps += endpoint_steps  # the endpoint's group exists before a rule names it
    steps += _reconcile("security_group_rule", "ingress", group, ingress, facts.ingress, "from")
    steps += _reconcile(
        "egress_rule", "egress", group, desired.egress(str(group)), actual_egress, "to"
    )
    if desired.warehouse_group_id:
        wanted = (desired.warehouse_rule(str(group)),)
        steps += _reconcile(
            "warehouse_rule",
            "ingress",
            desired.warehouse_group_id,
            wanted,
            facts.warehouse_rules,
            f"on {desired.warehouse_group_id} from",
        )

    key_name = t.resource_name(desired.name)
    key_tags = {**tags, t.KEY_FINGERPRINT_TAG: desired.admin_key_fingerprint}
    if facts.key_pair is None:
        steps.append(
            new_step(
                "key_pair",
                "create",
                f"{key_name} ({desired.admin_key_fingerprint})",
                "import_key_pair",
                name=key_name,
                public_key=desired.admin_public_key,
                tags=key_tags,
            )
        )
    elif facts.key_fingerprint != desired.admin_key_fingerprint:
        steps.append(
            new_step(
                "key_pair",
                "update",
                f"{key_name} -> {desired.admin_key_fingerprint} (new hosts only)",
                "replace_key_pair",
                name=key_name,
                public_key=desired.admin_public_key,
                tags=key_tags,
            )
        )

    host_steps, retired = _instance_steps(desired, facts, group, generation, replace, now)
    steps += host_steps
    steps += _address_steps(desired, facts, any(s.op == "run_instance" for s in host_steps))
    steps += [
        new_step(
            "instance", "delete", f"terminate {old} (replaced)", "terminate_instance", instance=old
        )
        for old in retired
    ]
    steps += _endpoint_removal(desired, facts)
    return steps


def _endpoint_steps(
    desired: Desired, facts: AwsFacts, group: str | Ref, now: int
) -> tuple[list[Step], list[str | Ref]]:
    """With admin_access = "eice": the tool's endpoint and its group (or `eice_id`'s groups),
    and the groups the bastion group admits on port 22."""
    if not desired.uses_endpoint:
        return [], []
    if desired.eice_id:
        endpoint = facts.endpoint
        return [], list(endpoint.security_group_ids) if endpoint is not None else []
    steps: list[Step] = []
    tags = {**t.common_tags(desired.name), t.ROLE_TAG: t.ENDPOINT_ROLE}
    endpoint_group: str | Ref = facts.endpoint_group_id or Ref("endpoint_group")
    if facts.endpoint_group_id is None:
        name = t.endpoint_group_name(desired.name)
        steps.append(
            new_step(
                "instance_connect_endpoint_group",
                "create",
                f"{name} in {desired.vpc_id} (the endpoint's own group)",
                "create_endpoint_group",
                name=name,
                vpc_id=desired.vpc_id,
                tags=tags,
            )
        )
        actual = [SecurityGroupRule(ALL_TRAFFIC, -1, -1, "0.0.0.0/0")]
        if facts.vpc_ipv6:
            actual.append(SecurityGroupRule(ALL_TRAFFIC, -1, -1, "::/0"))
    else:
        actual = facts.endpoint_group_egress
    wanted = (SecurityGroupRule("tcp", TUNNEL_PORT, TUNNEL_PORT, str(group), "SSH to the bastion"),)
    steps += _reconcile(
        "instance_connect_endpoint_rule", "egress", endpoint_group, wanted, actual, "to"
    )
    if facts.endpoint is None:
        steps.append(
            new_step(
                "instance_connect_endpoint",
                "create",
                f"{t.resource_name(desired.name)} in {desired.subnet_id} (PreserveClientIp off)",
                "create_instance_connect_endpoint",
                subnet_id=desired.subnet_id,
                group=endpoint_group,
                tags=tags,
                client_token=t.client_token(f"{desired.name}/instance-connect", now),
            )
        )
    return steps, [endpoint_group]


def _endpoint_removal(desired: Desired, facts: AwsFacts) -> list[Step]:
    """Back to admin_access = "direct" (or to eice_id): the tool's endpoint and group go,
    after the bastion group stopped admitting it (planned above)."""
    if desired.uses_endpoint and not desired.eice_id:
        return []
    steps = []
    if facts.endpoint is not None and facts.endpoint_owned:
        steps.append(
            new_step(
                "instance_connect_endpoint",
                "delete",
                f"{facts.endpoint.endpoint_id} (admin_access no longer uses it)",
                "delete_instance_connect_endpoint",
                endpoint=facts.endpoint.endpoint_id,
            )
        )
    if facts.endpoint_group_id is not None:
        steps.append(
            new_step(
                "instance_connect_endpoint_group",
                "delete",
                facts.endpoint_group_id,
                "delete_security_group",
                group=facts.endpoint_group_id,
            )
        )
    return steps


def _instance_steps(
    desired: Desired,
    facts: AwsFacts,
    group: str | Ref,
    generation: int | None,
    replace: bool,
    now: int,
) -> tuple[list[Step], list[str]]:
    """Steps for the host, and the ids of hosts to terminate once the address has moved."""
    old = facts.instance_id
    leftovers = list(facts.extra_instance_ids)
    differences = _instance_differences(desired, facts) if old else []
    if old and differences and not replace:
        detail = f"{old}: {'; '.join(differences)}: run `bastion provision --replace` (keeps the Elastic IP)"
        return [new_step("instance", "update", detail, "needs_replace")], leftovers
    if old and not replace:
        steps = []
        if facts.instance_state in {"stopped", "stopping"}:
            steps.append(
                new_step(
                    "instance",
                    "update",
                    f"start {old} ({facts.instance_state})",
                    "start_instance",
                    instance=old,
                )
            )
        if facts.security_group_id and facts.instance_groups != [facts.security_group_id]:
            steps.append(
                new_step(
                    "instance",
                    "update",
                    f"{old}: security groups {facts.instance_groups} -> [{facts.security_group_id}]",
                    "set_instance_groups",
                    instance=old,
                    group=facts.security_group_id,
                )
            )
        return steps, leftovers
    steps = []
    # A new host: for a replacement, or when a terminated host still holds the token.
    if generation is None or replace or generation in facts.used_generations:
        newer = max([generation or 0, now, *facts.used_generations]) + 1
        if isinstance(group, str):
            steps.append(
                new_step(
                    "security_group",
                    "update",
                    f"{group}: generation {generation} -> {newer}",
                    "set_generation",
                    group=group,
                    generation=newer,
                )
            )
        generation = newer
    tags = {
        **t.common_tags(desired.name),
        t.GENERATION_TAG: str(generation),
        t.AMI_TAG: desired.ami,
    }
    launch = {
        "ami": desired.ami,
        "instance_type": desired.instance_type,
        "subnet_id": desired.subnet_id,
        "group": group,
        "key_name": t.resource_name(desired.name),
        "tags": tags,
        "client_token": t.client_token(desired.name, generation),
        "user_data": first_boot_user_data(desired.ssh_port),
    }
    verb = f"replaces {old} ({'; '.join(differences) or 'requested'})" if old else "new host"
    steps.append(
        new_step(
            "instance",
            "create",
            f"{desired.instance_type} from {desired.ami} in {desired.subnet_id}: {verb}",
            "run_instance",
            **launch,
        )
    )
    return steps, ([old] if old else []) + leftovers


def _instance_differences(desired: Desired, facts: AwsFacts) -> list[str]:
    found = []
    if facts.instance_type != desired.instance_type:
        found.append(f"instance type {facts.instance_type} -> {desired.instance_type}")
    if not desired.ami_from_ssm and facts.ami != desired.ami:
        found.append(f"AMI {facts.ami} -> {desired.ami}")
    if facts.instance_subnet_id and facts.instance_subnet_id != desired.subnet_id:
        found.append(f"subnet {facts.instance_subnet_id} -> {desired.subnet_id}")
    return found


def _address_steps(desired: Desired, facts: AwsFacts, launching: bool) -> list[Step]:
    """One tagged Elastic IP, kept across replacements, on the current host."""
    steps: list[Step] = []
    allocation: str | Ref = facts.allocation_id or Ref("elastic_ip")
    if facts.allocation_id is None:
        steps.append(
            new_step(
                "elastic_ip",
                "create",
                f"{t.resource_name(desired.name)} (the address dbt Cloud uses)",
                "allocate_address",
                tags=t.common_tags(desired.name),
            )
        )
    for extra in facts.extra_allocation_ids:
        steps.append(
            new_step(
                "elastic_ip",
                "delete",
                f"{extra} (a second address for this name)",
                "release_address",
                allocation=extra,
            )
        )
    address = facts.public_ip or "(new address)"
    if launching:
        action = "update" if facts.eip_instance_id else "create"
        steps.append(
            new_step(
                "elastic_ip_association",
                action,
                f"{address} -> (new instance)",
                "associate_address",
                allocation=allocation,
                instance=Ref("instance"),
            )
        )
    elif facts.instance_id and facts.eip_instance_id != facts.instance_id:
        action = "update" if facts.eip_instance_id else "create"
        steps.append(
            new_step(
                "elastic_ip_association",
                action,
                f"{address} -> {facts.instance_id}",
                "associate_address",
                allocation=allocation,
                instance=facts.instance_id,
            )
        )
    return steps


def _reconcile(
    resource: str,
    direction: str,
    group: str | Ref,
    wanted: tuple[SecurityGroupRule, ...],
    actual: list[SecurityGroupRule],
    word: str,
) -> list[Step]:
    """Authorize missing rules, fix descriptions, revoke everything else."""
    have = {r.key: r for r in actual}
    want = {r.key: r for r in wanted}
    steps: list[Step] = []
    where = "" if isinstance(group, Ref) or resource == "warehouse_rule" else f" on {group}"
    for key, rule in want.items():
        if key not in have:
            steps.append(
                new_step(
                    resource,
                    "create",
                    rule.describe(word) + where,
                    f"authorize_{direction}",
                    group=group,
                    rule=rule,
                )
            )
        elif have[key].description != rule.description:
            steps.append(
                new_step(
                    resource,
                    "update",
                    f"{rule.describe(word)}{where}: description was {have[key].description!r}",
                    f"describe_{direction}",
                    group=group,
                    rule=rule,
                )
            )
    for key, rule in have.items():
        if key not in want:
            steps.append(
                new_step(
                    resource,
                    "delete",
                    rule.describe(word) + where,
                    f"revoke_{direction}",
                    group=group,
                    rule=rule,
                )
            )
    return steps


def moving_ssh_port(desired: Desired, facts: AwsFacts) -> int | None:
    """The port sshd listened on before `ssh_port` changed, while the change is under way."""
    if facts.ssh_port is None or facts.ssh_port == desired.ssh_port:
        return None
    return facts.ssh_port


def replace_port(rule: SecurityGroupRule, port: int) -> SecurityGroupRule:
    return SecurityGroupRule(rule.protocol, port, port, rule.source, rule.description)


def to_plan(steps: list[Step]) -> Plan:
    return Plan(changes=[s.change for s in steps])


def new_step(resource: str, action: Any, detail: str, op: str, **args: Any) -> Step:
    return Step(Change("aws", resource, action, detail), op, args)


def host_key_steps(facts: AwsFacts, fingerprint: str) -> list[Step]:
    """Pin the host key the admin login saw in the instance's tag, so a fresh runner (CI)
    checks the host it reaches against it."""
    if not facts.instance_id or facts.host_key_tag == fingerprint:
        return []
    action = "update" if facts.host_key_tag else "create"
    detail = f"{t.HOST_KEY_TAG} = {fingerprint}"
    step = new_step(
        "host_key_tag", action, detail, "record_host_key",
        instance=facts.instance_id, fingerprint=fingerprint,
    )  # fmt: skip
    return [step]


def first_boot_user_data(ssh_port: int) -> str:
    """cloud-init user data that moves sshd to `ssh_port` at first boot; none for port 22.

    A fresh image listens on 22, but the group opens only `ssh_port`: without this, a new
    host on another port could not be reached to be configured.
    """
    if ssh_port == 22:
        return ""

    return render("first_boot.yaml.j2", ssh_port=int(ssh_port))
