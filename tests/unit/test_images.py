"""Named images: which SSM parameter each one reads, for which instance types."""

from __future__ import annotations

import pytest

from bastion.config.images import ami_reference, architecture


@pytest.mark.parametrize(
    ("ami", "instance_type", "reference"),
    [
        ("debian-13", "t3.micro", "ssm:/aws/service/debian/release/13/latest/amd64"),
        ("debian-12", "t3.micro", "ssm:/aws/service/debian/release/12/latest/amd64"),
        ("debian-13", "t4g.micro", "ssm:/aws/service/debian/release/13/latest/arm64"),
        (
            "al2023",
            "t3.micro",
            "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        ),
        (
            "al2023",
            "m7g.large",
            "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
        ),
        (
            "ubuntu-24.04",
            "t3.micro",
            "ssm:/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
        ),
        (
            "ubuntu-22.04",
            "t4g.small",
            "ssm:/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id",
        ),
    ],
)
def test_a_named_image_is_read_from_its_publishers_parameter(
    ami: str, instance_type: str, reference: str
) -> None:
    assert ami_reference(ami, instance_type) == reference


@pytest.mark.parametrize("ami", ["ami-0123456789abcdef0", "ssm:/golden/bastion-ami"])
def test_an_ami_id_or_ssm_path_is_taken_as_written(ami: str) -> None:
    assert ami_reference(ami, "t4g.micro") == ami


@pytest.mark.parametrize(
    ("instance_type", "arch"),
    [
        ("t4g.micro", "arm64"),
        ("m7g.large", "arm64"),
        ("c7gn.xlarge", "arm64"),
        ("r6gd.large", "arm64"),
        ("im4gn.large", "arm64"),
        ("g5g.xlarge", "arm64"),
        ("a1.medium", "arm64"),
        ("t3.micro", "amd64"),
        ("t3a.nano", "amd64"),
        ("m7i-flex.large", "amd64"),
        ("g5.xlarge", "amd64"),
        ("g4dn.xlarge", "amd64"),
        ("c6in.large", "amd64"),
    ],
)
def test_graviton_types_run_arm64_images(instance_type: str, arch: str) -> None:
    assert architecture(instance_type) == arch
