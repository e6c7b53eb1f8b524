"""`up` = `plan` + apply + verify, stage by stage.

Each stage is planned by the same code `plan` runs, then applied: AWS (phase one of an
ssh_port change keeps the old port open), dbt Cloud's SSH tunnels (keys from the vendors'
APIs), the host, the host-key tag, verify, and only then dbt Cloud's move to a new
ssh_port and phase two of a port change. A stage that fails stops the run; what the stages before
it changed is already in the Outcome.
"""

from __future__ import annotations

import contextlib

from bastion.aws.plan import host_key_steps
from bastion.aws.stage import AwsPlan, run_plan, run_steps
from bastion.config.settings import Settings
from bastion.errors import HostError, SshError, VerifyError
from bastion.host.stage import apply_host, plan_host
from bastion.pipeline.configure import configure_stage
from bastion.pipeline.locate import Target, admin, before_aws, uses_aws
from bastion.pipeline.outcome import Observer, Outcome
from bastion.pipeline.plan import read_aws
from bastion.pipeline.port_change import close_old_port
from bastion.pipeline.vendor import move_ports, read_for, vendor_stage
from bastion.pipeline.verify import verify_tunnel


def up(
    settings: Settings,
    observer: Observer,
    outcome: Outcome,
    *,
    skip_verify: bool = False,
    accept_new: bool = False,
    prune: bool = False,
    replace: bool = False,
) -> Target:
    """Provision, configure, verify; then close the old port of an ssh_port change."""
    stages = 2 if skip_verify else 3
    target = before_aws(settings)
    # The vendors' APIs are read (credentials, connections, groups) before anything
    # changes: what they refuse stops the run here, not after the AWS stage.
    read_for(target, observer)
    if uses_aws(settings):
        observer.stage(f"1/{stages} provision: AWS resources of bastion-{settings.name}")
        with observer.status("reading AWS"):
            planned = read_aws(target, replace=replace)
        assert planned is not None
        _host_refusals_first(target, planned, observer, accept_new=accept_new)
        made, facts = run_plan(settings, target.session, planned, observer)
        target.see(facts)
        outcome.record(made, observer)
    else:
        observer.stage(f"1/{stages} provision: skipped (provider = existing)")
    vendors = vendor_stage(target, observer, outcome)  # after AWS: the Elastic IP is known
    observer.stage(f"2/{stages} configure: the host at {target.address}")
    with contextlib.ExitStack() as keep:
        # The admin connection stays open and is lent to verify (its key goes in and out
        # over it), unless an ssh_port change is under way: verify's admin side then logs
        # in afresh on the new port, which is what proves it.
        done = configure_stage(
            target, observer, outcome, accept_new=accept_new, prune=prune, keep=keep
        )
        record_host_key(target, done.fingerprint, observer, outcome)
        outcome.bastion = target.bastion_json(done.fingerprint)
        move = done.move
        if skip_verify:
            keep.close()
            if move is not None:
                outcome.notice(
                    f"{move.describe()}: both ports stay open; the old one closes after a run "
                    "that verifies the tunnel on the new one", observer,
                )  # fmt: skip
            waiting = vendors.port_moves() if vendors is not None else []
            if waiting:
                outcome.notice(
                    "dbt Cloud's SSH tunnel of " + ", ".join(
                        f"connection {w.connection_id}" for w in waiting
                    ) + f" moves to port {settings.bastion.ssh_port} after a run that verifies "
                    "the tunnel there (`bastion up` without --skip-verify)", observer,
                )  # fmt: skip
            return target
        observer.stage(f"3/{stages} verify")
        try:
            verify_tunnel(target, observer, outcome, admin=done.conn)
        except VerifyError:
            if move is not None:
                outcome.notice(
                    f"{move.describe()}: the tunnel failed on {move.new}, so port(s) "
                    f"{move.ports} stay open on both sides; the next `bastion up` resumes",
                    observer,
                )
            raise
    outcome.bastion = target.bastion_json(done.fingerprint)
    # dbt Cloud moves to the new port only now that it is proven; the key it generated goes
    # on the host (in a change of its own, even when a save after it failed) before the old
    # port closes
    try:
        move_ports(target, vendors, observer, outcome)
    finally:
        if vendors is not None and vendors.moved:
            install_keys(target, observer, outcome, host_key=done.fingerprint)
    if move is not None:
        observer.stage(f"{move.describe()}: verified on {move.new}, closing {move.ports}")
        close_old_port(target, move, observer, outcome, host_key=done.fingerprint)
    return target


def install_keys(target: Target, observer: Observer, outcome: Outcome, *, host_key: str) -> None:
    """The tunnel users' keys as the vendors hold them now, on the host (a fresh admin
    login: the port a move left open answers too; no sshd change, no reload)."""
    with admin(target, extra_pins=[host_key]) as conn:
        installed, _ = apply_host(target.host_settings, conn, target.warehouse, observer)
    outcome.record(installed, observer)


def _host_refusals_first(
    target: Target, planned: AwsPlan, observer: Observer, *, accept_new: bool
) -> None:
    """What the host would refuse (exit 4: a tunnel user that is a system account there...)
    must stop the run before AWS changes anything. So where the host already exists and AWS
    has changes to make, the host is planned first, read-only; a run with nothing to change
    on AWS pays nothing. A host out of reach is left to the host stage (the AWS changes may be
    what lets the admin in)."""
    if not planned.steps or not planned.facts.instance_id:
        return
    target.see(planned.facts)
    if not target.address:
        return
    try:
        with (
            observer.status("reading the host before changing AWS"),
            admin(target, accept_new=accept_new) as conn,
        ):
            plan_host(target.host_settings, conn, target.warehouse)
    except (SshError, HostError):
        return


def record_host_key(target: Target, fingerprint: str, observer: Observer, outcome: Outcome) -> None:
    """Pin the host key the admin login saw in the instance's tag (a planned change)."""
    if target.facts is None:
        return
    steps = host_key_steps(target.facts, fingerprint)
    if steps:
        outcome.record(run_steps(target.session, steps, observer), observer)
        target.facts.host_key_tag = fingerprint
