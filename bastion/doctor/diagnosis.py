"""doctor's judgements of the config and the host, and the Diagnosis they add up to.

"could not connect to server: Connection timed out" has many causes (a security group, a
route, a network ACL, sshd's keepalive, a load balancer's idle timeout, PermitOpen); each
is judged on its own, and the first broken link explains the timeout dbt Cloud reports.
bastion.pipeline.doctor walks the path and gathers what is judged here.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from bastion.config.rules import host_port
from bastion.config.settings import Settings, TunnelSettings
from bastion.doctor.findings import Finding
from bastion.endpoint import Endpoint
from bastion.host.facts import HostFacts
from bastion.host.paths import VERIFY_KEYS_NAME
from bastion.tunnel.result import Hop, VerifyResult
from bastion.vendors.dbt_cloud import CHECK_SECONDS, GIVE_UP_SECONDS

_FORWARDING_ON = ("yes", "all", "local")


@dataclass
class Diagnosis:
    """Every finding in path order, and the verify run when it could be made."""

    findings: list[Finding] = field(default_factory=list)
    verify: list[VerifyResult] = field(default_factory=list)  # one walk per tunnel user

    @property
    def ok(self) -> bool:
        return not any(f.status == "fail" for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "fail"]

    def explanation(self) -> str:
        """The timeout dbt Cloud reports, in terms of the first broken link."""
        if self.ok:
            return "every link of the path works: dbt Cloud should connect"
        first = self.failures[0]
        return (
            "dbt Cloud's 'could not connect to server: Connection timed out' comes from "
            f"the first broken link, {first.link or first.area}: {first.what}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "explanation": self.explanation(),
        }


def config_findings(settings: Settings) -> list[Finding]:
    """What the config alone tells: keepalive against dbt's needs, keys, credentials."""
    found = []
    several = len(settings.tunnels) > 1
    for tunnel in settings.tunnels.values():
        who = f"{tunnel.user}: " if several else ""
        keepalive = keepalive_finding(
            tunnel.client_alive_interval,
            tunnel.client_alive_count_max,
            "config",
            f"{tunnel.where}.client_alive_*",
        )
        found.append(dataclasses.replace(keepalive, what=who + keepalive.what))
        found.append(_keys_finding(tunnel, who))
    w = settings.warehouse
    if w.auth == "password" and not os.environ.get(w.password_env, ""):
        found.append(Finding(
            "warn", "config", "the variable warehouse.password_env names is not set: verify can "
            "reach the database but not log in",
            "export that variable (its name is in bastion.toml) to test the login too",
            link="config.credentials",
        ))  # fmt: skip
    return found


def _keys_finding(tunnel: TunnelSettings, who: str) -> Finding:
    keys = tunnel.configured_keys()
    if tunnel.api is not None:
        what = f"{who}keys from {tunnel.label}'s API (read by plan and up)"
        if keys:
            what += f", and {len(keys)} configured"
        return Finding("ok", "config", what, link="config.keys")
    if keys:
        return Finding("ok", "config", f"{who}{len(keys)} tunnel key(s) configured",
                       link="config.keys")  # fmt: skip
    return Finding(
        "warn", "config",
        f"{who}no {tunnel.label} public key configured: only verify's own key can log in",
        f"save the connection in {tunnel.label}, copy its public key, then `bastion keys add"
        f"{' --tunnel ' + tunnel.user if who else ''} KEY`",
        link="config.keys",
    )  # fmt: skip


def keepalive_finding(interval: int, count: int, area: str, where: str) -> Finding:
    """sshd must keep a tunnel dbt Cloud still considers alive (30 s checks, 300 s give-up)."""
    link = f"{area}.keepalive"
    window = interval * count
    fix = (
        f"set ClientAliveInterval {CHECK_SECONDS} and ClientAliveCountMax 10 "
        f"({where}), then run bastion configure"
    )
    if interval <= 0:
        return Finding(
            "warn", area, "sshd sends no keepalives: idle NAT or load balancer timeouts drop "
            "quiet tunnels", fix, link=link,
        )  # fmt: skip
    if window < GIVE_UP_SECONDS:
        return Finding(
            "fail",
            area,
            f"keepalive {interval} s x {count}: sshd drops a tunnel after {window} s without "
            f"an answer, dbt Cloud waits {GIVE_UP_SECONDS} s: idle tunnels die and dbt "
            "Cloud sees 'Connection timed out'",
            fix,
            link=link,
        )
    if interval > CHECK_SECONDS:
        return Finding(
            "warn", area, f"keepalive every {interval} s is slower than dbt Cloud's "
            f"{CHECK_SECONDS} s checks", fix, link=link,
        )  # fmt: skip
    return Finding(
        "ok", area, f"keepalive {interval} s x {count} = {window} s (dbt: 30 s / 300 s)", link=link
    )


def host_findings(settings: Settings, facts: HostFacts, target: Endpoint) -> list[Finding]:
    """Each tunnel user's effective sshd settings (`sshd -T -C user=…`): keepalive,
    forwarding, PermitOpen."""
    found = []
    if facts.sshd_errors:
        found.append(Finding(
            "warn", "host", f"sshd -T reported: {'; '.join(facts.sshd_errors[:2])}",
            "run bastion configure", link="host.sshd",
        ))  # fmt: skip
    for user, tunnel in settings.tunnels.items():
        found += _tunnel_user_findings(user, tunnel.where, facts, target)
    return found


def _tunnel_user_findings(
    user: str, where: str, facts: HostFacts, target: Endpoint
) -> list[Finding]:
    effective = facts.tunnel_sshd(user)
    found = []
    home = facts.home_of(user)
    leftover = f"{home}/.ssh/{VERIFY_KEYS_NAME}" if home else f"/{VERIFY_KEYS_NAME}"
    if any(path.endswith(leftover) for path in facts.files):
        found.append(Finding(
            "warn", "host", f"a verify key is left in {user}'s {VERIFY_KEYS_NAME} (an interrupted "
            "verify): it expires by itself", "run bastion verify: it removes the file afterwards",
            link="host.verify_key",
        ))  # fmt: skip

    def first(key: str, default: str = "") -> str:
        return (effective.get(key) or [default])[0].strip()

    try:
        interval, count = (
            int(first("clientaliveinterval", "0")),
            int(first("clientalivecountmax", "3")),
        )
    except ValueError:
        interval, count = 0, 3
    found.append(keepalive_finding(interval, count, "host", f"for {user}: {where}.client_alive_*"))
    forwarding = first("allowtcpforwarding", "no").lower()
    if forwarding not in _FORWARDING_ON or first("disableforwarding", "no").lower() == "yes":
        found.append(Finding(
            "fail", "host", f"TCP forwarding is off for {user} (AllowTcpForwarding {forwarding}): "
            "sshd refuses every tunnel", "run bastion configure (it sets AllowTcpForwarding local "
            f"in the Match User {user} block)", link="host.forwarding",
        ))  # fmt: skip
    else:
        found.append(
            Finding(
                "ok",
                "host",
                f"TCP forwarding allowed for {user} ({forwarding})",
                link="host.forwarding",
            )
        )
    wanted = host_port(target.host, target.port)
    permitted = " ".join(effective.get("permitopen", [])).split()
    if wanted in permitted:
        found.append(
            Finding("ok", "host", f"PermitOpen for {user} names {wanted}", link="host.permitopen")
        )
    elif "any" in permitted:
        found.append(Finding(
            "warn", "host", f"PermitOpen for {user} is 'any': the tunnel can reach every host",
            f"run bastion configure (it limits PermitOpen to {wanted})", link="host.permitopen",
        ))  # fmt: skip
    else:
        found.append(Finding(
            "fail", "host", f"PermitOpen for {user} names {' '.join(permitted) or 'nothing'}, but "
            f"dbt Cloud asks for {wanted} (matched literally): the bastion refuses the forward",
            "run bastion configure; the warehouse hostname in dbt Cloud must be exactly "
            f"{target.host}", link="host.permitopen",
        ))  # fmt: skip
    return found


def hop_finding(hop: Hop, user: str = "") -> Finding:
    """A verify hop as a finding; `user` names the tunnel user where there are several."""
    return Finding(
        "ok" if hop.ok else "fail",
        "tunnel",
        f"{user + ': ' if user else ''}{hop.name}: {hop.detail} [{hop.ms:.0f} ms]",
        link=f"tunnel.{hop.name}",
    )
