"""The boto3 session every AWS call goes through, made once per command from the config.

boto3 reads `AWS_ENDPOINT_URL` (and the per-service variants) by itself, so emulators and
VPC endpoints work without a setting of ours; we only choose the profile and the region.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.config.settings import Settings
from bastion.errors import ConfigError

if TYPE_CHECKING:
    import boto3


def make_session(settings: Settings) -> boto3.Session:
    """A session for `aws.profile` (or the default credential chain) in `aws.region`."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(
            profile_name=settings.aws.profile or None, region_name=settings.aws.region
        )
    except ProfileNotFound:
        raise ConfigError(
            f"aws.profile: no AWS profile named {settings.aws.profile!r}",
            hint="name a profile from ~/.aws/config, or remove aws.profile to use the default chain",
        ) from None
