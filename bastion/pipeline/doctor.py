"""`doctor`: walk the whole path dbt Cloud uses and name the broken link, with its fix.

Config, then AWS (provider aws), then the host's effective sshd settings for the tunnel
user, then the tunnel itself with `verify`. Nothing is changed, apart from verify's
short-lived key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from bastion.aws.stage import status_aws
from bastion.config.settings import Settings
from bastion.doctor.aws import aws_findings
from bastion.doctor.diagnosis import Diagnosis, config_findings, hop_finding, host_findings
from bastion.doctor.findings import Finding
from bastion.endpoint import Endpoint
from bastion.errors import BastionError
from bastion.host.connection import HostConnection
from bastion.host.sessions import iso
from bastion.host.stage import read_facts
from bastion.pipeline.locate import Target, admin, before_aws, locate, uses_aws
from bastion.pipeline.sessions import describe_login, last_login_per_user, read_logins
from bastion.tunnel.hops import tcp_check
from bastion.tunnel.verify import verify
from bastion.tunnel.verify_key import AdminVerifyKeyHost

Add = Callable[[list[Finding]], None]


def diagnose(
    settings: Settings,
    *,
    run_verify: bool = True,
    on_finding: Callable[[Finding], None] | None = None,
) -> Diagnosis:
    """Config, AWS (provider aws), host, then the tunnel; every link reported, none fixed."""
    diagnosis = Diagnosis()

    def add(found: list[Finding]) -> None:
        for finding in found:
            diagnosis.findings.append(finding)
            if on_finding is not None:
                on_finding(finding)

    add(config_findings(settings))
    target = _aws_part(settings, add)
    if target is None or not target.address:
        return diagnosis
    address = target.address
    admin_ok = _host_part(settings, target, add)
    if not run_verify:
        return diagnosis
    # through an Instance Connect Endpoint (admin_access = "eice"), verify goes its way too
    try:
        via = (target.verify_port, target.dial) if target.through_endpoint else None
    except BastionError as exc:  # no endpoint yet: nothing reaches the host that way
        add([Finding("fail", "tunnel", f"tcp: {exc.message}", exc.hint, link="tunnel.tcp")])
        add([Finding("skip", "tunnel", "verify needs a way to the host")])
        return diagnosis
    if not admin_ok:
        port = via[0] if via else settings.bastion.ssh_port
        hop, _ = tcp_check(address, port, via[1] if via else None)
        add([hop_finding(hop)])
        add([Finding("skip", "tunnel", "verify needs the admin login to install its key")])
        return diagnosis
    keys = AdminVerifyKeyHost(settings, address, via=via)
    try:
        for user in settings.tunnels:
            keys.user = user
            result = verify(
                settings,
                address=address,
                target=target.warehouse,
                host=keys,
                user=user,
                gateway=target.gateway if settings.warehouse.auth == "iam" else None,
                via=via,
            )
            diagnosis.verify.append(result)
            add([hop_finding(hop, user if len(settings.tunnels) > 1 else "") for hop in result.hops])
    finally:
        keys.close()
    return diagnosis


def _aws_part(settings: Settings, add: Add) -> Target | None:
    """AWS findings (provider aws); the located target, or None when nothing can be reached."""
    if not uses_aws(settings):
        try:
            return locate(settings)
        except BastionError as exc:
            add([Finding("fail", "config", f"warehouse endpoint: {exc.message}", exc.hint,
                         link="config.warehouse")])  # fmt: skip
            return None
    target = before_aws(settings)
    try:
        target.see(status_aws(settings, target.session))
        assert target.facts is not None
        add(aws_findings(settings, target.gateway, target.facts))
    except BastionError as exc:
        add([Finding("fail", "aws", f"cannot read AWS: {exc.message}", exc.hint, link="aws.api")])
        warehouse = settings.warehouse
        if not (target.override and warehouse.host):
            return None
        # The host and the tunnel can still be checked at the configured addresses.
        target.warehouse = Endpoint(warehouse.host, warehouse.effective_port)
    return target


def _host_part(settings: Settings, target: Target, add: Add) -> bool:
    """Log in as the admin (the way every admin login goes: directly, or through the
    Instance Connect Endpoint), read the host's facts in one round trip, judge each tunnel
    user's sshd."""
    with contextlib.ExitStack() as stack:
        try:
            conn = stack.enter_context(admin(target))
        except BastionError as exc:
            add([Finding(
                "fail", "host",
                f"cannot log in as {settings.bastion.admin_user}@{target.address}: {exc.message}",
                exc.hint or "check bastion.admin_key and bastion.admin_cidrs", link="host.admin",
            )])  # fmt: skip
            return False
        try:
            facts = read_facts(settings, conn)
        except BastionError as exc:
            add([Finding("fail", "host", f"cannot read the host: {exc.message}", exc.hint,
                         link="host.admin")])  # fmt: skip
            return False
        add(host_findings(settings, facts, target.warehouse))
        add(login_findings(settings, conn))
    return True


def login_findings(settings: Settings, conn: HostConnection) -> list[Finding]:
    """When each tunnel user last logged in with a key of its own, from where, with which
    key; or that it never did (as far back as sshd's log goes)."""
    try:
        _, report = read_logins(settings, conn)
    except BastionError as exc:
        return [Finding("warn", "logins", f"cannot read sshd's log: {exc.message}", exc.hint,
                        link="host.last_login")]  # fmt: skip
    found = []
    for user, session in last_login_per_user(report, list(settings.tunnels)).items():
        if session is not None:
            what = f"{user} last connected {describe_login(session)}"
            found.append(Finding("ok", "logins", what, link="host.last_login"))
            continue
        back = f" (sshd's log goes back to {iso(report.begins)})" if report.begins else ""
        vendor = settings.tunnels[user].label
        found.append(Finding(
            "warn", "logins",
            f"{user}: {vendor} has not connected since the key was installed{back}",
            f"check the key in {vendor}'s connection: it must be one `bastion keys list` shows",
            link="host.last_login",
        ))  # fmt: skip
    return found
