"""The `bastion` command: builds the Typer app and maps every failure to SPEC's exit codes."""

from __future__ import annotations

import json
import sys
from typing import NoReturn

import typer

from bastion import __version__
from bastion.cli import configure as configure_cmd
from bastion.cli import connection as connection_cmd
from bastion.cli import destroy as destroy_cmd
from bastion.cli import doctor as doctor_cmd
from bastion.cli import iam_policy as iam_policy_cmd
from bastion.cli import init as init_cmd
from bastion.cli import ips as ips_cmd
from bastion.cli import plan as plan_cmd
from bastion.cli import provision as provision_cmd
from bastion.cli import sessions as sessions_cmd
from bastion.cli import status as status_cmd
from bastion.cli import up as up_cmd
from bastion.cli import verify as verify_cmd
from bastion.cli.common import envelope
from bastion.cli.keys import app as keys_app
from bastion.cli.leave import run_and_leave

HELP = """\
Build, lock down and prove the SSH bastion dbt Cloud uses to reach a private warehouse.

One idempotent run creates the EC2 host in the warehouse VPC, opens it only to dbt Cloud's addresses, sets up the tunnel user and a hardened sshd, and logs in to the database through the tunnel as dbt Cloud would. Re-run it from CI: it changes nothing unless something drifted.

Exit codes: 0 ok, 1 runtime failure, 2 plan --detailed-exitcode with changes, 3 tunnel broken, 4 invalid config or input (nothing changed).

Example:  bastion init && bastion up
"""

# A bad command line (click's UsageError, vendored by typer >= 0.29): found through typer's
# public BadParameter, a UsageError itself, rather than a private module path.
UsageError: type[Exception] = next(
    base for base in typer.BadParameter.__mro__ if base.__name__ == "UsageError"
)

app = typer.Typer(
    name="bastion",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"bastion {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Root options."""


# In the order an operator meets them (SPEC's table).
app.command("init")(init_cmd.command)
app.command("sessions")(sessions_cmd.command)
app.command("plan")(plan_cmd.command)
app.command("up")(up_cmd.command)
app.command("provision")(provision_cmd.command)
app.command("configure")(configure_cmd.command)
app.command("verify")(verify_cmd.command)
app.add_typer(keys_app, name="keys")
app.command("status")(status_cmd.command)
app.command("doctor")(doctor_cmd.command)
app.command("connection")(connection_cmd.command)
app.command("ips")(ips_cmd.command)
app.command("iam-policy")(iam_policy_cmd.command)
app.command("destroy")(destroy_cmd.command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: a bad command line is exit 4 (exit 2 belongs to plan --detailed-exitcode)."""
    args = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="bastion", standalone_mode=False)
    except UsageError as exc:
        exc.show()  # type: ignore[attr-defined]
        if "--json" in args:
            context = getattr(exc, "ctx", None)
            name = context.command.name if context and context.command else "bastion"
            document = envelope(name)
            document["ok"] = False
            document["error"] = {"kind": "input", "message": exc.format_message()}  # type: ignore[attr-defined]
            print(json.dumps(document))
        sys.exit(4)
    except typer.Abort:
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def run() -> NoReturn:
    """The `bastion` program (console script, `python -m bastion`): main(), then an exit
    that skips freeing every object one by one (see bastion.cli.leave)."""

    run_and_leave(main)
