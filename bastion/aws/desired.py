"""What the config asks of AWS, resolved: the bastion's rules, host and key, as values.

Built once per run from Settings plus what discovery found (AMI id, subnet, warehouse
group); the planner compares it with AwsFacts.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bastion.aws import tags as t
from bastion.aws.permissions import SecurityGroupRule

UPDATE_PORTS = (80, 443)


@dataclass(frozen=True)
class Desired:
    """What the config asks for, resolved (AMI id, subnet, warehouse group)."""

    name: str
    vpc_id: str
    subnet_id: str
    ssh_port: int
    ingress: tuple[SecurityGroupRule, ...]
    warehouse_port: int
    warehouse_group_id: str | None
    warehouse_host: str
    instance_type: str
    ami: str
    ami_from_ssm: bool
    admin_public_key: str
    admin_key_fingerprint: str
    admin_access: str = "direct"  # "eice": admin and verify through an Instance Connect Endpoint
    eice_id: str = ""  # an endpoint that is not the tool's own

    @property
    def uses_endpoint(self) -> bool:
        return self.admin_access == "eice"

    @property
    def group_name(self) -> str:
        return t.resource_name(self.name)

    def egress(self, group: str) -> tuple[SecurityGroupRule, ...]:
        """Egress: the warehouse on its port, and 80/443 for package updates."""
        port = self.warehouse_port
        target = self.warehouse_group_id or host_network(self.warehouse_host)
        rules = [SecurityGroupRule("tcp", port, port, target, "warehouse")]
        rules += [
            SecurityGroupRule("tcp", p, p, "0.0.0.0/0", "package updates") for p in UPDATE_PORTS
        ]
        return tuple(rules)

    def warehouse_rule(self, group: str) -> SecurityGroupRule:
        port = self.warehouse_port
        return SecurityGroupRule("tcp", port, port, group, f"bastion-{self.name} (dbt-bastion)")


def ingress_rules(
    ssh_port: int, dbt: list[tuple[str, str]], extra: list[str], admin: list[str]
) -> tuple[SecurityGroupRule, ...]:
    """One rule per source network on `ssh_port`, described by where it comes from."""
    sources: dict[str, list[str]] = {}
    named = [*dbt, *((c, "extra_cidrs") for c in extra), *((c, "admin_cidrs") for c in admin)]
    for cidr, origin in named:
        network = str(ipaddress.ip_network(cidr, strict=False))
        if origin not in sources.setdefault(network, []):
            sources[network].append(origin)
    return tuple(
        sorted(
            (
                SecurityGroupRule("tcp", ssh_port, ssh_port, net, ", ".join(origins))
                for net, origins in sources.items()
            ),
            key=lambda r: r.key,
        )
    )


def host_network(host: str) -> str:
    """The warehouse as an egress destination: its /32 (/128), or 0.0.0.0/0 for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "0.0.0.0/0"
    return f"{address}/{address.max_prefixlen}"
