"""Doctor's AWS links: each one a way dbt Cloud ends up with "Connection timed out".

Reads what the gateway's facts lack (route tables, network ACLs, load balancers) straight
from AWS through the gateway; changes nothing. Each check returns one Finding whose text
says which link is broken and how to mend it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from bastion.aws.discover import route_table_of, routes_to_internet
from bastion.aws.facts import AwsFacts
from bastion.aws.gateway import AwsGateway
from bastion.config.settings import Settings
from bastion.doctor.findings import Finding
from bastion.errors import AwsError
from bastion.vendors.dbt_cloud import CHECK_SECONDS

# Client ports a reply may go to (Linux, Windows and NAT ranges): a stateless NACL must pass all.
_EPHEMERAL_SAMPLES = (1024, 32768, 49152, 60999, 65535)
_TIMEOUT = "dbt Cloud sees 'could not connect to server: Connection timed out'"


def dbt_cloud_cidrs(settings: Settings) -> list[str]:
    """Every source a tunnel's tool may connect from: each tunnel's lists plus extra_cidrs."""
    return list(dict.fromkeys(cidr for cidr, _ in settings.named_sources()))


def aws_findings(settings: Settings, gateway: AwsGateway, facts: AwsFacts) -> list[Finding]:
    """Instance, EIP, bastion group, route, network ACL, warehouse group, load balancers."""
    findings = [instance_state(facts), elastic_ip(facts)]
    findings.append(bastion_ingress(settings, facts))
    subnet = facts.instance_subnet_id or facts.subnet_id
    if subnet and facts.vpc_id:
        findings.append(internet_route(gateway, facts.vpc_id, subnet))
        findings.append(network_acl(settings, gateway, subnet))
    else:
        findings.append(Finding("skip", "aws", "route and network ACL: no bastion subnet found"))
    findings.append(warehouse_ingress(facts))
    if facts.vpc_id:
        findings.extend(load_balancers(gateway, facts))
    return findings


def instance_state(facts: AwsFacts) -> Finding:
    if facts.instance_id is None:
        return Finding(
            "fail", "aws", "no bastion instance exists", "run bastion up", link="aws.instance"
        )
    if facts.instance_state != "running":
        return Finding(
            "fail",
            "aws",
            f"instance {facts.instance_id} is {facts.instance_state}: {_TIMEOUT}",
            "start it (bastion up starts a stopped bastion)",
            link="aws.instance",
        )
    return Finding("ok", "aws", f"instance {facts.instance_id} is running", link="aws.instance")


def elastic_ip(facts: AwsFacts) -> Finding:
    if not facts.public_ip:
        return Finding(
            "fail", "aws", "no Elastic IP: dbt Cloud has no stable address to reach",
            "run bastion up", link="aws.eip",
        )  # fmt: skip
    if facts.instance_id and facts.eip_instance_id != facts.instance_id:
        return Finding(
            "fail",
            "aws",
            f"Elastic IP {facts.public_ip} is not associated with {facts.instance_id}: {_TIMEOUT}",
            "run bastion up (it re-associates the address)",
            link="aws.eip",
        )
    return Finding("ok", "aws", f"Elastic IP {facts.public_ip} is on the instance", link="aws.eip")


def bastion_ingress(settings: Settings, facts: AwsFacts) -> Finding:
    """Every dbt Cloud address must be admitted on ssh_port by the bastion's group."""
    port = settings.bastion.ssh_port
    if facts.security_group_id is None:
        return Finding(
            "fail", "aws", "the bastion security group does not exist", "run bastion up",
            link="aws.ingress",
        )  # fmt: skip
    missing = [
        cidr
        for cidr in dbt_cloud_cidrs(settings)
        if not any(_admits(rule, cidr, port) for rule in facts.ingress)
    ]
    if missing:
        return Finding(
            "fail",
            "aws",
            f"bastion group {facts.security_group_id} does not admit dbt Cloud's "
            f"{', '.join(missing)} on tcp/{port}: from there {_TIMEOUT}",
            "run bastion up (it restores the rules), or add the CIDRs to dbt_cloud.extra_cidrs",
            link="aws.ingress",
        )
    return Finding(
        "ok", "aws", f"bastion group admits every dbt Cloud address on tcp/{port}",
        link="aws.ingress",
    )  # fmt: skip


def _admits(rule: Any, cidr: str, port: int) -> bool:
    if rule.is_group or rule.source.startswith("pl-"):
        return False
    if rule.protocol not in ("tcp", "-1"):
        return False
    if rule.protocol == "tcp" and not rule.from_port <= port <= rule.to_port:
        return False
    wanted = ipaddress.ip_network(cidr, strict=False)
    source = ipaddress.ip_network(rule.source, strict=False)
    return wanted.version == source.version and wanted.subnet_of(source)  # type: ignore[arg-type]


def internet_route(gateway: AwsGateway, vpc_id: str, subnet_id: str) -> Finding:
    """The subnet's route table (own, else main) must send 0.0.0.0/0 to an internet gateway."""
    table = route_table_of(gateway.describe_route_tables(vpc_id), subnet_id)
    to_igw = routes_to_internet(table)
    if not to_igw:
        name = table.get("RouteTableId", "?") if table else "none"
        return Finding(
            "fail",
            "aws",
            f"subnet {subnet_id} (route table {name}) has no route 0.0.0.0/0 to an internet "
            f"gateway: replies never reach dbt Cloud and {_TIMEOUT}",
            f"add a route 0.0.0.0/0 -> igw-… to {name}, or put the bastion in a public subnet",
            link="aws.route",
        )
    return Finding(
        "ok", "aws", f"subnet {subnet_id} routes 0.0.0.0/0 to an internet gateway",
        link="aws.route",
    )  # fmt: skip


def network_acl(settings: Settings, gateway: AwsGateway, subnet_id: str) -> Finding:
    """The subnet's NACL is stateless: it must let tcp/ssh_port in and the replies out."""
    acls = gateway.network_acls_of_subnet(subnet_id)
    if not acls:
        return Finding("warn", "aws", f"no network ACL found for {subnet_id}", link="aws.nacl")
    entries = acls[0].get("Entries", [])
    port = settings.bastion.ssh_port
    blocked: list[str] = []
    for cidr in dbt_cloud_cidrs(settings):
        if not _acl_allows(entries, egress=False, cidr=cidr, port=port):
            blocked.append(f"{cidr} in on tcp/{port}")
        elif not all(
            _acl_allows(entries, egress=True, cidr=cidr, port=p) for p in _EPHEMERAL_SAMPLES
        ):
            blocked.append(f"replies to {cidr} on tcp/1024-65535")
    acl_id = acls[0].get("NetworkAclId", "?")
    if blocked:
        return Finding(
            "fail",
            "aws",
            f"network ACL {acl_id} denies {'; '.join(blocked[:3])}"
            f"{' …' if len(blocked) > 3 else ''}: {_TIMEOUT}",
            f"allow tcp/{port} in from dbt Cloud's addresses and tcp/1024-65535 out to them "
            f"in {acl_id} (rules are evaluated by number; the first match wins)",
            link="aws.nacl",
        )
    return Finding(
        "ok", "aws", f"network ACL {acl_id} lets dbt Cloud in on tcp/{port}", link="aws.nacl"
    )


def _acl_allows(entries: list[dict[str, Any]], *, egress: bool, cidr: str, port: int) -> bool:
    """Evaluate NACL entries as AWS does: the lowest-numbered matching rule decides."""
    wanted = ipaddress.ip_network(cidr, strict=False)
    for entry in sorted(entries, key=lambda e: int(e.get("RuleNumber", 32767))):
        block = entry.get("CidrBlock") or entry.get("Ipv6CidrBlock")
        if bool(entry.get("Egress")) != egress or not block:
            continue
        network = ipaddress.ip_network(block, strict=False)
        if network.version != wanted.version or not wanted.subnet_of(network):  # type: ignore[arg-type]
            continue
        protocol = str(entry.get("Protocol", "-1"))
        span = entry.get("PortRange") or {}
        if protocol not in ("-1", "6"):
            continue
        if protocol == "6" and not int(span.get("From", 0)) <= port <= int(span.get("To", 65535)):
            continue
        return entry.get("RuleAction") == "allow"
    return False


def warehouse_ingress(facts: AwsFacts) -> Finding:
    """The warehouse group must admit the bastion group on the warehouse port."""
    port = facts.warehouse.port
    if not facts.warehouse_group_id:
        return Finding(
            "warn", "aws", "the warehouse security group is unknown: cannot check it admits the bastion",
            "set warehouse.security_group_id", link="aws.warehouse",
        )  # fmt: skip
    if not any(
        rule.protocol in ("tcp", "-1")
        and (rule.protocol == "-1" or rule.from_port <= port <= rule.to_port)
        for rule in facts.warehouse_rules
    ):
        return Finding(
            "fail",
            "aws",
            f"warehouse group {facts.warehouse_group_id} does not admit the bastion group "
            f"{facts.security_group_id} on tcp/{port}: the bastion cannot reach the database "
            f"and {_TIMEOUT}",
            "run bastion up (it adds the rule on the warehouse group)",
            link="aws.warehouse",
        )
    return Finding(
        "ok", "aws", f"warehouse group {facts.warehouse_group_id} admits the bastion on tcp/{port}",
        link="aws.warehouse",
    )  # fmt: skip


def load_balancers(gateway: AwsGateway, facts: AwsFacts) -> list[Finding]:
    """A load balancer in front of the bastion cuts idle tunnels at its idle timeout."""
    try:
        balancers = gateway.load_balancers()
    except AwsError as exc:
        return [Finding("warn", "aws", f"cannot list load balancers: {exc.message}", link="aws.lb")]
    findings = []
    for balancer in balancers:
        if balancer.get("VpcId") != facts.vpc_id or not _fronts_bastion(gateway, balancer, facts):
            continue
        arn, name = balancer["LoadBalancerArn"], balancer.get("LoadBalancerName", "?")
        timeout = _idle_timeout(gateway, balancer)
        if timeout is not None and timeout < CHECK_SECONDS:
            findings.append(Finding(
                "fail",
                "aws",
                f"load balancer {name} in front of the bastion closes idle connections after "
                f"{timeout} s, before dbt Cloud's 30 s check: tunnels drop and {_TIMEOUT}",
                f"raise its idle timeout to 350 s or more (aws elbv2 modify-load-balancer-attributes "
                f"--load-balancer-arn {arn} …), or let dbt Cloud connect to the Elastic IP directly",
                link="aws.lb",
            ))  # fmt: skip
        else:
            shown = f"{timeout} s" if timeout is not None else "the default"
            findings.append(
                Finding("ok", "aws", f"load balancer {name}: idle timeout {shown}", link="aws.lb")
            )
    return findings


def _fronts_bastion(gateway: AwsGateway, balancer: dict[str, Any], facts: AwsFacts) -> bool:
    groups = gateway.target_groups(balancer["LoadBalancerArn"])
    targets = {facts.instance_id, facts.private_ip} - {None}
    for group in groups:
        health = gateway.target_health(group["TargetGroupArn"])
        if any(d.get("Target", {}).get("Id") in targets for d in health):
            return True
    return False


def _idle_timeout(gateway: AwsGateway, balancer: dict[str, Any]) -> int | None:
    """ALB: idle_timeout.timeout_seconds; NLB: the TCP listeners' tcp.idle_timeout.seconds."""
    arn = balancer["LoadBalancerArn"]
    values = gateway.load_balancer_attributes(arn)
    seconds = (
        [int(values["idle_timeout.timeout_seconds"])]
        if values.get("idle_timeout.timeout_seconds")
        else []
    )
    if balancer.get("Type") == "network":
        try:
            for listener in gateway.listeners(arn):
                found = gateway.listener_attributes(listener["ListenerArn"])
                if found.get("tcp.idle_timeout.seconds"):
                    seconds.append(int(found["tcp.idle_timeout.seconds"]))
        except (AwsError, AttributeError):
            pass
    return min(seconds) if seconds else None
