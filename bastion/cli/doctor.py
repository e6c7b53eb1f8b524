"""`bastion doctor`: diagnose "could not connect to server: Connection timed out" end to end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, load_settings, run
from bastion.console import Console
from bastion.errors import VerifyError

if TYPE_CHECKING:
    from bastion.doctor.findings import Finding


def command(
    skip_verify: Annotated[
        bool,
        typer.Option("--skip-verify", help="Check config, AWS and host only; no tunnel login."),
    ] = False,
    config: ConfigOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Walk the path dbt Cloud uses and report each link as ok / warn / fail with its fix.

    Config, then AWS (instance, Elastic IP, security groups, route, network ACL, load balancers), then the host's effective sshd settings for the tunnel user, then verify. Changes nothing. Exit 3 when a link fails.

    Example:  bastion doctor --json | jq '.doctor.findings[] | select(.status == "fail")'
    """

    def body(console: Console, document: dict[str, Any]) -> int:
        from bastion.pipeline.doctor import diagnose
        from bastion.pipeline.verify import verify_document

        settings = load_settings(config)
        console.heading("doctor: the path from dbt Cloud to the warehouse")
        diagnosis = diagnose(
            settings,
            run_verify=not skip_verify,
            on_finding=lambda f: console.findings([finding_row(f)]),
        )
        document["doctor"] = diagnosis.to_dict()
        if diagnosis.verify:
            several = len(settings.tunnels) > 1
            document["verify"] = verify_document(diagnosis.verify, several)
        if not diagnosis.ok:
            failures = diagnosis.failures
            raise VerifyError(
                f"{len(failures)} broken link(s); {diagnosis.explanation()}",
                hint=failures[0].fix,
            )
        console.ok(diagnosis.explanation())
        return 0

    run("doctor", json_mode, body)


def finding_row(finding: Finding) -> tuple[str, str, str, str]:
    """(status, area, what, fix): the console escapes them, nothing else does."""
    return (finding.status, finding.area, finding.what, finding.fix)
