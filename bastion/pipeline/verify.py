"""The verify stage: prove the tunnel as the tunnel user, at the located bastion.

An admin connection the caller already holds (`up` has one from configure) is lent to
install and remove verify's key; otherwise one is opened for it.
"""

from __future__ import annotations

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
) -> VerifyResult:
    """Walk every hop, report each as it finishes; VerifyError names the first broken one."""
    settings = target.settings
    address = target.require_address()

    def show(hop: Hop) -> None:
        observer.hop(hop)
        if hop.name == "database" and hop.ok and idle > 0:
            observer.say(f"  … holding the tunnel idle for {idle:.0f} s")

    observer.stage("verify: the tunnel as dbt Cloud uses it")
    via = (target.verify_port, target.dial) if target.through_endpoint else None
    result = verify(
        settings,
        address=address,
        target=target.warehouse,
        host=AdminVerifyKeyHost(settings, address, admin, via=via),
        idle=idle,
        gateway=target.gateway if settings.warehouse.auth == "iam" else None,
        on_hop=show,
        via=via,
    )
    outcome.verify = result.to_dict()
    outcome.bastion = {
        **(outcome.bastion or {}),
        "address": result.address,
        "ssh_port": result.ssh_port,
        "host_key_fingerprint": result.host_key_fingerprint or None,
    }
    failed = result.failed
    if failed is not None:
        raise VerifyError(f"{failed.name}: {failed.detail}")
    if not result.login_tested:
        observer.notice("the database was reached, but login was not tested (no credentials)")
    observer.ok(f"tunnel works: {result.address}:{result.ssh_port} -> {result.target}")
    return result
