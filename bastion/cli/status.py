"""`bastion status`: a read-only summary of the instance, address, host key, rules, keys and sshd."""

from __future__ import annotations

from typing import Any

from bastion.cli.common import ConfigOption, JsonOption, load_settings, run
from bastion.cli.configure import HostOption
from bastion.console import Console


def command(
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    host: HostOption = None,
) -> None:
    """Summarise what exists: instance, address, host key, rules, tunnel keys, effective sshd.

    Read-only, on AWS and on the host. A host that cannot be reached is reported, not fatal.

    Example:  bastion status --json | jq .status.host.sshd
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline import locate as pipeline
        from bastion.errors import SshError

        settings = load_settings(config)
        target = pipeline.locate(settings, host=host)
        status: dict[str, Any] = {"aws": None, "host": None}
        fingerprint = None
        if target.facts is not None:
            status["aws"] = target.facts.to_dict()
            _show_aws(console, status["aws"])
        if target.address and (target.facts is None or target.facts.instance_state == "running"):
            from bastion.host.stage import status_host

            try:
                with pipeline.admin(target) as conn:
                    status["host"] = status_host(settings, conn, target.warehouse)
                    fingerprint = conn.host_key_fingerprint
            except SshError as exc:
                status["host"] = {"reachable": False, "error": str(exc)}
                console.warn(f"host: {exc}")
            else:
                _show_host(console, status["host"])
        document["bastion"] = target.bastion_json(fingerprint)
        document["status"] = status

    run("status", json_mode, body)


def _show_aws(console: Console, aws: dict[str, Any]) -> None:
    console.heading("AWS")
    for key, value in aws.items():
        if isinstance(value, (list, dict)):
            console.say(f"  {key}:")
            for item in value if isinstance(value, list) else value.items():
                console.say(f"    {item}")
        else:
            console.say(f"  {key}: {value}")


def _show_host(console: Console, host: dict[str, Any]) -> None:
    console.heading("host")
    for key, value in host.items():
        if isinstance(value, dict):
            console.say(f"  {key}:")
            for inner, item in value.items():
                console.say(f"    {inner}: {item}")
        elif isinstance(value, list):
            console.say(f"  {key}:")
            for item in value:
                console.say(f"    {item}")
        else:
            console.say(f"  {key}: {value}")
