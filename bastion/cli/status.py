"""`bastion status`: a read-only summary of the instance, address, host key, rules, keys and sshd."""

from __future__ import annotations

from typing import Any

from bastion.cli.common import ConfigOption, HostOption, JsonOption, load_settings, recorded, run
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
        from bastion.pipeline.status import status

        settings = load_settings(config)
        with recorded(document) as outcome:
            found = status(settings, outcome, host=host)
        document["status"] = found
        labels = {user: tunnel.label for user, tunnel in settings.tunnels.items()}
        if found["aws"] is not None:
            _show_aws(console, found["aws"])
        if found["host"] is not None and found["host"].get("reachable") is False:
            console.warn(f"host: {found['host']['error']}")
        elif found["host"] is not None:
            _show_host(console, found["host"], labels)
            fingerprint = found["host"].get("host_key_fingerprint")
            if any(t.vendor == "fivetran" for t in settings.tunnels.values()):
                console.say(f"  Fivetran pins the bastion's host key: approve {fingerprint} in "
                            "its connection setup (again whenever the host is replaced)")  # fmt: skip
        if "vendors" in found:
            console.warn(f"the vendors' APIs were not read: {found['vendors']['error']}")

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


def _show_host(console: Console, host: dict[str, Any], labels: dict[str, str]) -> None:
    console.heading("host")
    for key, value in host.items():
        if key == "last_logins":
            _show_logins(console, value, labels)
            continue
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


def _show_logins(console: Console, logins: dict[str, Any], labels: dict[str, str]) -> None:
    console.say("  last tunnel logins:")
    if isinstance(logins.get("error"), str):  # (a tunnel user may be named error: a dict)
        console.say(f"    sshd's log was not read: {logins['error']}")
        return
    for user, login in logins.items():
        if login is None:
            label = labels.get(user, "the tool")
            console.say(f"    {user}: never ({label} has not connected since the key was "
                        f"installed: check the key in {label}'s connection)")  # fmt: skip
        else:
            key = f"{login['key']} ({login['key_comment']})" if login["key_comment"] else login["key"]
            console.say(f"    {user}: {login['time']} from {login['from']} ({login['source']}) "
                        f"with {key}")  # fmt: skip
