"""The images `bastion.ami` can name, and what each one implies.

A named image is a public SSM parameter that its publisher keeps pointing at the newest
build (one per architecture), and the sudo user that image creates for the key pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT = "debian-13"

# A Graviton (arm64) type has a `g` right after its generation digit (t4g, m7g, c7gn,
# im4gn), and a1 is the first generation; every other type runs amd64 images.
_GRAVITON = re.compile(r"(?:a1|[a-z]+\d+g[a-z]*)(?:-[a-z]+)?\.[a-z0-9]+")


@dataclass(frozen=True)
class NamedImage:
    name: str
    admin_user: str
    amd64: str  # the SSM parameter of the x86_64 build
    arm64: str  # of the Graviton build

    def parameter(self, instance_type: str) -> str:
        """The SSM parameter holding the newest AMI id for `instance_type`'s architecture."""
        return self.arm64 if architecture(instance_type) == "arm64" else self.amd64


def _debian(release: str) -> NamedImage:
    path = f"/aws/service/debian/release/{release}/latest"
    return NamedImage(f"debian-{release}", "admin", f"{path}/amd64", f"{path}/arm64")


def _ubuntu(release: str, volume: str) -> NamedImage:
    path = f"/aws/service/canonical/ubuntu/server/{release}/stable/current"
    return NamedImage(
        f"ubuntu-{release}",
        "ubuntu",
        f"{path}/amd64/hvm/{volume}/ami-id",
        f"{path}/arm64/hvm/{volume}/ami-id",
    )


_AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default"

NAMED_IMAGES: dict[str, NamedImage] = {
    image.name: image
    for image in (
        _debian("13"),
        _debian("12"),
        NamedImage("al2023", "ec2-user", f"{_AL2023}-x86_64", f"{_AL2023}-arm64"),
        _ubuntu("24.04", "ebs-gp3"),
        _ubuntu("22.04", "ebs-gp2"),
    )
}


def architecture(instance_type: str) -> str:
    """amd64 or arm64, as Debian and Ubuntu name them in their parameters."""
    return "arm64" if _GRAVITON.fullmatch(instance_type) else "amd64"


def ami_reference(ami: str, instance_type: str) -> str:
    """`bastion.ami` as AWS takes it: an AMI id or `ssm:/path`, a named image's parameter
    for the architecture of `instance_type`."""
    image = NAMED_IMAGES.get(ami)
    if image is None:
        return ami
    return f"ssm:{image.parameter(instance_type)}"
