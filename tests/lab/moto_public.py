"""moto that lets the lab publish AWS's public SSM parameters (`/aws/service/...`).

AWS keeps the names under `/aws/` for its own public parameters and refuses PutParameter
there; so does moto, which holds only the Amazon Linux ones of them. Debian and Ubuntu
publish theirs there too (`/aws/service/debian/release/13/latest/amd64`): to resolve
`bastion.ami = "debian-13"` as AWS would, the lab's account seeder must be able to put
them, and this module makes moto accept it under `/aws/service/` alone.

Run as a script it is `moto_server` with that one difference (`python -P moto_public.py
-H 127.0.0.1 -p PORT`; -P keeps this folder off sys.path). A test process that serves moto
from a thread calls accept_public_parameters() itself.
"""

from __future__ import annotations

from typing import Any

PUBLIC_PREFIX = "/aws/service/"


def accept_public_parameters() -> None:
    """Let PutParameter create and overwrite String parameters under /aws/service/ in
    every moto account of this process, from now on (idempotent)."""
    from moto.core.utils import utcnow
    from moto.ssm.exceptions import ParameterAlreadyExists
    from moto.ssm.models import Parameter, SimpleSystemManagerBackend

    refusing = SimpleSystemManagerBackend.put_parameter
    if getattr(refusing, "accepts_public", False):
        return

    def put_parameter(
        self: SimpleSystemManagerBackend,
        name: str,
        description: str,
        value: str,
        parameter_type: str,
        allowed_pattern: str,
        keyid: str,
        overwrite: bool,
        tags: list[dict[str, str]],
        data_type: str,
        tier: str | None = None,
        policies: str | None = None,
    ) -> Any:
        if not name.startswith(PUBLIC_PREFIX):
            return refusing(
                self, name, description, value, parameter_type, allowed_pattern, keyid,
                overwrite, tags, data_type, tier=tier, policies=policies,
            )  # fmt: skip
        versions = self._parameters[name]
        if versions and not overwrite:
            raise ParameterAlreadyExists
        parameter = Parameter(
            account_id=self.account_id,
            name=name,
            value=value,
            parameter_type="String",
            description=description,
            allowed_pattern=None,
            keyid=None,
            last_modified_date=utcnow(),
            version=versions[-1].version + 1 if versions else 1,
            data_type=data_type or "text",
            tier="Standard",
        )
        versions.append(parameter)
        return parameter

    put_parameter.accepts_public = True  # type: ignore[attr-defined]
    SimpleSystemManagerBackend.put_parameter = put_parameter  # type: ignore[method-assign]


def main() -> None:
    from moto.server import main as moto_server

    accept_public_parameters()
    moto_server()


if __name__ == "__main__":
    main()
