"""Fivetran's API for a group's public key: `GET /v1/groups/{group_id}/public-key` with
HTTP Basic auth (API key, secret), answered `{"code": "Success", "data": {"public_key":
"ssh-rsa … fivetran user key"}}`. One key pair per group (destination); nothing is written
to Fivetran. The key is parsed (and re-rendered from its parts) before anything uses it.
"""

from __future__ import annotations

from bastion.apis.http import VendorApi
from bastion.config.keys import PublicKey, parse_public_key
from bastion.errors import InputError, VendorError


def group_public_key(base: str, group_id: str, auth: tuple[str, str], names: str) -> PublicKey:
    """The public key Fivetran connects with for `group_id`."""
    with VendorApi(base, who="Fivetran", credentials=names, auth=auth) as api:
        body = api.call("GET", f"/v1/groups/{group_id}/public-key", what=f"group {group_id}")
    data = body.get("data") if isinstance(body, dict) else None
    text = data.get("public_key") if isinstance(data, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise VendorError(f"Fivetran answered group {group_id}'s public key without one")
    try:
        return parse_public_key(text)
    except InputError as exc:
        raise VendorError(
            f"Fivetran returned a public key for group {group_id} that is not one: {exc.message}"
        ) from None
