"""The planner alone: desired vs actual -> changes, without AWS."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bastion.aws import tags as t
from bastion.aws.facts import AwsFacts
from bastion.aws.permissions import SecurityGroupRule, flatten
from bastion.aws.plan import Desired, ingress_rules, plan_steps
from bastion.endpoint import Endpoint

KEY_FINGERPRINT = "SHA256:" + "k" * 43

NOW = 1_800_000_000  # the clock the planner is given (seconds since the epoch)


def desired_for(**changes: object) -> Desired:
    values: dict[str, object] = {
        "name": "analytics", "vpc_id": "vpc-0123456789abcdef0",
        "subnet_id": "subnet-0123456789abcdef0", "ssh_port": 22,
        "ingress": ingress_rules(22, [("52.45.144.63/32", "dbt Cloud us")], [], ["198.51.100.7/32"]),
        "warehouse_port": 5439, "warehouse_group_id": "sg-0aaaaaaaaaaaaaaaa",
        "warehouse_host": "wh.example.com", "instance_type": "t3.micro", "ami": "ami-12345678",
        "ami_from_ssm": False, "admin_public_key": "ssh-ed25519 AAAA",
        "admin_key_fingerprint": KEY_FINGERPRINT,
    }  # fmt: skip
    values.update(changes)
    return Desired(**values)  # type: ignore[arg-type]


def converged(desired: Desired) -> AwsFacts:
    """Facts of a bastion that matches `desired` exactly."""
    group = "sg-0bbbbbbbbbbbbbbbb"
    return AwsFacts(
        warehouse=Endpoint("wh.example.com", 5439), warehouse_group_id=desired.warehouse_group_id,
        vpc_id=desired.vpc_id, subnet_id=desired.subnet_id, instance_id="i-0123456789abcdef0",
        instance_state="running", instance_type=desired.instance_type, ami=desired.ami,
        public_ip="203.0.113.10", security_group_id=group, instance_subnet_id=desired.subnet_id,
        instance_groups=[group], generation=5, used_generations={5}, instance_generation=5,
        ingress=list(desired.ingress), egress=list(desired.egress(group)),
        warehouse_rules=[desired.warehouse_rule(group)], key_pair="bastion-analytics",
        key_fingerprint=KEY_FINGERPRINT, allocation_id="eipalloc-1", association_id="eipassoc-1",
        eip_instance_id="i-0123456789abcdef0",
    )  # fmt: skip


def test_a_converged_bastion_plans_nothing() -> None:
    desired = desired_for()
    assert plan_steps(desired, converged(desired), now=NOW) == []


def test_sources_are_deduplicated_and_described_by_origin() -> None:
    rules = ingress_rules(
        22, [("52.45.144.63/32", "dbt Cloud us")], ["52.45.144.63/32"], ["198.51.100.7/32"]
    )
    assert {(r.source, r.description) for r in rules} == {
        ("52.45.144.63/32", "dbt Cloud us, extra_cidrs"),
        ("198.51.100.7/32", "admin_cidrs"),
    }


def test_a_changed_description_is_an_update_not_a_revoke() -> None:
    desired = desired_for()
    facts = converged(desired)
    facts.ingress = [
        SecurityGroupRule(r.protocol, r.from_port, r.to_port, r.source, "old")
        for r in facts.ingress
    ]
    steps = plan_steps(desired, facts, now=NOW)
    assert {(s.change.resource, s.change.action, s.op) for s in steps} == {
        ("security_group_rule", "update", "describe_ingress")
    }


def test_a_new_group_plans_the_default_egress_rule_away() -> None:
    desired = desired_for()
    facts = AwsFacts(warehouse=Endpoint("wh.example.com", 5439))
    changes = [s.change for s in plan_steps(desired, facts, now=NOW)]
    assert any(
        c.resource == "egress_rule" and c.action == "delete" and "all traffic" in c.detail
        for c in changes
    )
    assert changes[0].resource == "security_group"


def test_a_token_held_by_a_terminated_host_bumps_the_generation() -> None:
    desired = desired_for()
    facts = converged(desired)
    facts.instance_id = None
    facts.eip_instance_id = None
    steps = plan_steps(desired, facts, now=NOW)
    ops = [s.op for s in steps]
    assert ops[:2] == ["set_generation", "run_instance"]
    new_generation = steps[0].args["generation"]
    assert new_generation > 5
    assert steps[1].args["client_token"] == t.client_token("analytics", new_generation)


def test_replace_keeps_the_address_and_retires_the_old_host() -> None:
    desired = desired_for()
    steps = plan_steps(desired, converged(desired), replace=True, now=NOW)
    assert [s.op for s in steps] == [
        "set_generation",
        "run_instance",
        "associate_address",
        "terminate_instance",
    ]
    assert "allocate_address" not in [s.op for s in steps]
    assert steps[2].args["allocation"] == "eipalloc-1"


def test_a_changed_ami_id_needs_replace() -> None:
    desired = desired_for()
    facts = converged(desired)
    facts.ami = "ami-87654321"
    (step,) = plan_steps(desired, facts, now=NOW)
    assert (step.change.resource, step.change.action, step.op) == (
        "instance",
        "update",
        "needs_replace",
    )
    assert "--replace" in step.change.detail


def test_a_newer_ami_behind_ssm_is_not_a_change() -> None:
    desired = desired_for(ami_from_ssm=True, ami="ami-99999999")
    assert plan_steps(desired, converged(desired_for()), now=NOW) == []


CIDRS = st.sampled_from(
    ["52.45.144.63/32", "198.51.100.7/32", "192.0.2.0/28", "203.0.113.9/32", "10.0.0.0/8"]
)
PORTS = st.sampled_from([22, 2222])


@given(
    actual=st.lists(st.tuples(PORTS, CIDRS, st.sampled_from(["", "admin_cidrs", "x"])), max_size=8),
    admin=st.lists(CIDRS, min_size=1, max_size=3),
)
def test_applying_the_planned_rule_changes_converges(
    actual: list[tuple[int, str, str]], admin: list[str]
) -> None:
    desired = desired_for(ingress=ingress_rules(22, [], [], admin))
    facts = converged(desired)
    facts.ingress = flatten(
        [{"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "IpRanges": [{"CidrIp": c, "Description": d}]}
         for p, c, d in actual]
    )  # fmt: skip
    rules = {r.key: r for r in facts.ingress}
    for step in plan_steps(desired, facts, now=NOW):
        rule = step.args["rule"]
        if step.op == "revoke_ingress":
            del rules[rule.key]
        else:
            rules[rule.key] = rule
    facts.ingress = list(rules.values())
    assert plan_steps(desired, facts, now=NOW) == []


def test_a_new_group_never_reuses_a_generation_seen_on_a_terminated_host() -> None:
    import time

    facts = AwsFacts(warehouse=Endpoint("wh", 5439), used_generations={int(time.time()) + 100})
    steps = plan_steps(desired_for(), facts, now=NOW)
    launch = next(s for s in steps if s.op == "run_instance")
    used = next(iter(facts.used_generations))
    assert launch.args["client_token"] != t.client_token("analytics", used)
    assert int(steps[0].args["tags"][t.GENERATION_TAG]) > used
