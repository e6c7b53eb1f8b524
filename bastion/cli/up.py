"""`bastion up`: provision -> configure -> verify, the whole job in one idempotent run."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, load_settings, run
from bastion.cli.configure import AcceptNewOption, PruneOption
from bastion.console import Console

if TYPE_CHECKING:
    from bastion.changes import Plan
    from bastion.config.settings import Settings
    from bastion.host.connection import HostConnection
    from bastion.pipeline.locate import Target
    from bastion.pipeline.port_change import PendingMove


def command(
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    skip_verify: Annotated[
        bool, typer.Option("--skip-verify", help="Leave out the tunnel verification.")
    ] = False,
    accept_new_host_key: AcceptNewOption = False,
    prune: PruneOption = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Replace the instance (new type or AMI); keeps the Elastic IP."
        ),
    ] = False,
) -> None:
    """Provision, configure and verify: from nothing to a proven tunnel.

    Creates or repairs the AWS resources (provider aws), configures the host over SSH,
    then logs in to the database through the tunnel as dbt Cloud would. Re-running it
    changes nothing unless something drifted. Prints the fields to enter in dbt Cloud.

    Example:  DBT_ENV_SECRET_PASSWORD=… bastion up --json
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        settings = load_settings(config)
        run_up(
            settings,
            console,
            document,
            skip_verify=skip_verify,
            accept_new=accept_new_host_key,
            prune=prune,
            replace=replace,
        )

    run("up", json_mode, body)


def run_up(
    settings: Settings,
    console: Console,
    document: dict[str, Any],
    *,
    skip_verify: bool = False,
    accept_new: bool = False,
    prune: bool = False,
    replace: bool = False,
) -> None:
    """Each stage stops the run with its own exit code; what it changed is already reported."""
    from bastion.pipeline import locate as pipeline
    from bastion.changes import Plan

    made = Plan()
    stages = 2 if skip_verify else 3
    if pipeline.uses_aws(settings):
        console.heading(f"1/{stages} provision: AWS resources of bastion-{settings.name}")
        aws_changes, target = pipeline.provision(
            settings, console, replace=replace, close_old_port=False
        )
        _report(console, document, made, aws_changes)
    else:
        console.heading(f"1/{stages} provision: skipped (provider = existing)")
        target = pipeline.locate(settings)
    console.heading(f"2/{stages} configure: the host at {target.address}")
    with contextlib.ExitStack() as keep:
        # configure's admin connection stays open and is lent to verify (installing and
        # removing its key), unless an ssh_port change is under way: then verify's admin
        # side logs in afresh on the new port, which is what proves it.
        fingerprint, move, conn = _configure(
            settings, console, document, made, target, accept_new, prune, keep
        )
        document["bastion"] = target.bastion_json(fingerprint)
        if skip_verify:
            keep.close()
            if move is not None:
                _notice(console, document, made, f"{move.describe()}: both ports stay open; the "
                        "old one closes after a run that verifies the tunnel on the new one")  # fmt: skip
        else:
            from bastion.cli.verify import run_verify
            from bastion.errors import VerifyError

            console.heading(f"3/{stages} verify")
            try:
                run_verify(
                    settings,
                    console,
                    document,
                    address=target.address or "",
                    target=target.warehouse,
                    admin=conn,
                )
            except VerifyError:
                if move is not None:
                    _notice(console, document, made, f"{move.describe()}: the tunnel failed on "
                            f"{move.new}, so port(s) {_ports(move)} stay open on both sides; "
                            "the next `bastion up` resumes")  # fmt: skip
                raise
            finally:
                keep.close()
            document["bastion"] = target.bastion_json(fingerprint)
            if move is not None:
                _close_old_port(settings, console, document, made, target, move, fingerprint)
    summary(console, settings, target, fingerprint, made)


def _close_old_port(
    settings: Settings,
    console: Console,
    document: dict[str, Any],
    made: Plan,
    target: Target,
    move: PendingMove,
    fingerprint: str,
) -> None:
    """Phase two of an ssh_port change, only after verify passed on the new port."""
    from bastion.pipeline.port_change import close_old_port

    console.heading(f"{move.describe()}: verified on {move.new}, closing {_ports(move)}")
    closed = close_old_port(settings, target, move, console, host_key=fingerprint)
    _report(console, document, made, closed)


def _ports(move: PendingMove) -> str:
    return ", ".join(map(str, move.old))


def _notice(console: Console, document: dict[str, Any], made: Plan, text: str) -> None:
    console.warn(text)
    made.notices.append(text)
    document["notices"] = made.notices


def _configure(
    settings: Settings,
    console: Console,
    document: dict[str, Any],
    made: Plan,
    target: Target,
    accept_new: bool,
    prune: bool,
    keep: contextlib.ExitStack,
) -> tuple[str, PendingMove | None, HostConnection | None]:
    """Configure the host (phase one of an ssh_port change: sshd listens on both ports);
    pin its key in the instance tag when AWS does not know it yet.

    The admin connection is returned open (closed by `keep`) for verify to reuse, or None
    when an ssh_port change is pending (it was closed: verify must log in on the new port).
    """
    from bastion.pipeline import locate as pipeline
    from bastion.changes import Plan
    from bastion.host.stage import apply_host
    from bastion.pipeline.port_change import pending_move, pin_new_port

    extra: list[str] = []
    facts = target.facts
    if facts is not None and facts.instance_id and not facts.host_key_tag and target.session:
        from bastion.aws.stage import console_host_keys

        extra = console_host_keys(target.session, facts.instance_id)
    with contextlib.ExitStack() as opened:
        conn = opened.enter_context(pipeline.admin(target, accept_new=accept_new, extra_pins=extra))
        lent: HostConnection | None = None
        host_changes, host_facts = apply_host(
            settings, conn, target.warehouse, console, prune=prune
        )
        fingerprint: str = conn.host_key_fingerprint
        move = pending_move(settings, target, host_facts)
        if move is not None:
            pin_new_port(settings, conn, move.new)  # and conn closes on leaving this block
        else:
            lent = conn
            keep.push(opened.pop_all())
    tag = Plan()
    known = facts.host_key_tag if facts is not None else None
    if facts is not None and facts.instance_id and target.session and known != fingerprint:
        from bastion.aws.stage import record_host_key

        record_host_key(target.session, facts, fingerprint)
        detail = f"bastion:host-key = {fingerprint}"
        tag.add("aws", "host_key_tag", "update" if known else "create", detail)
    _report(console, document, made, host_changes)
    _report(console, document, made, tag, quiet_if_empty=True)
    return fingerprint, move, lent


def _report(
    console: Console,
    document: dict[str, Any],
    made: Plan,
    stage: Plan,
    *,
    quiet_if_empty: bool = False,
) -> None:
    made.extend(stage)
    document["changes"] = [change.to_dict() for change in made.changes]
    if stage.changes or not quiet_if_empty:
        console.changes(stage.changes, applied=True)
    for notice in stage.notices:
        console.warn(notice)
    if made.notices:
        document["notices"] = made.notices


def summary(
    console: Console, settings: Settings, target: Target, fingerprint: str, made: Plan
) -> None:
    from bastion.pipeline.connection_info import connection_info

    console.heading("summary")
    console.say(f"  changes: {len(made.changes) or 'none'}")
    tunnel_host = (target.facts.public_ip if target.facts else None) or target.address or ""
    console.say(f"  bastion: {tunnel_host}:{settings.bastion.ssh_port}  host key {fingerprint}")
    info = connection_info(settings, tunnel_host, target.warehouse)
    console.heading("enter in dbt Cloud (connection -> SSH tunnel):")
    for label, value in info.fields():
        console.say(f"  {label:<36} {value}")
    if not settings.tunnel_keys():
        console.warn("no dbt Cloud key is installed yet. To finish:")
        console.say(
            "  1. in dbt Cloud, save the connection above with 'Use SSH tunnel' on\n"
            "  2. copy the public key dbt Cloud then shows\n"
            "  3. run: bastion keys add 'ssh-ed25519 AAAA… dbtcloud'\n"
            "  4. in dbt Cloud, test the connection"
        )
