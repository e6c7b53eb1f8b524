"""The verify stage: prove the tunnel as each tunnel user, at the located bastion.

An admin connection the caller already holds (`up` has one from configure) is lent to
install and remove verify's keys; otherwise one is opened for them, and serves every
tunnel user of the run.
"""

from __future__ import annotations

from typing import Any

from bastion.errors import VerifyError
from bastion.host.connection import HostConnection
from bastion.pipeline.locate import Target
from bastion.pipeline.outcome import Observer, Outcome
from bastion.tunnel.result import Hop, VerifyResult
from bastion.tunnel.verify import verify
from bastion.tunnel.verify_key import AdminVerifyKeyHost


def verify_tunnel(
    target: Target,
    observer: Observer,
    outcome: Outcome,
    *,
    idle: float = 0,
    admin: HostConnection | None = None,
    tunnel: str | None = None,
) -> list[VerifyResult]:
    """Walk every hop as every tunnel user (or `tunnel` alone), report each as it finishes;
    every user is walked, and VerifyError names the first whose hop broke."""
    settings = target.settings
    address = target.require_address()
    users = [each.user for each in settings.selected(tunnel)]
    several = len(settings.tunnels) > 1

    def show(hop: Hop) -> None:
        observer.hop(hop)
        if hop.name == "database" and hop.ok and idle > 0:
            observer.say(f"  … holding the tunnel idle for {idle:.0f} s")

    via = (target.verify_port, target.dial) if target.through_endpoint else None
    keys = AdminVerifyKeyHost(settings, address, admin, via=via)
    results: list[VerifyResult] = []
    try:
        for user in users:
            vendor = settings.tunnels[user].label
            observer.stage(f"verify: the tunnel as {vendor} uses it" + (f" ({user})" if several else ""))
            keys.user = user
            results.append(verify(
                settings,
                address=address,
                target=target.warehouse,
                host=keys,
                user=user,
                idle=idle,
                gateway=target.gateway if settings.warehouse.auth == "iam" else None,
                on_hop=show,
                via=via,
            ))  # fmt: skip
    finally:
        keys.close()
    first = results[0]
    outcome.verify = verify_document(results, several)
    outcome.bastion = {
        **(outcome.bastion or {}),
        "address": first.address,
        "ssh_port": first.ssh_port,
        "host_key_fingerprint": first.host_key_fingerprint or None,
    }
    for result in results:
        failed = result.failed
        if failed is not None:
            where = f"{result.user}: " if several else ""
            raise VerifyError(f"{where}{failed.name}: {failed.detail}")
    if not all(result.login_tested for result in results):
        observer.notice("the database was reached, but login was not tested (no credentials)")
    names = f" as {', '.join(users)}" if several else ""
    observer.ok(f"tunnel works{names}: {first.address}:{first.ssh_port} -> {first.target}")
    return results


def verify_document(results: list[VerifyResult], several: bool) -> dict[str, Any]:
    """SPEC's `verify`: one user's walk; with several tunnel users, each under `tunnels`
    and the first user's `hops` beside them."""
    first = results[0].to_dict()
    if not several:
        return first
    return {
        **first,
        "ok": all(result.ok for result in results),
        "tunnels": {result.user: result.to_dict() for result in results},
    }
