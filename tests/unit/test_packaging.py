"""The wheel ships the templates and data: a non-editable install works from any directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import bastion, bastion.templates
assert bastion.__file__.startswith(sys.argv[1]), bastion.__file__
from bastion.vendors.dbt_cloud import allow_list
assert allow_list().resolve("us").cidrs
text = bastion.templates.render(
    "bastion.toml.j2", name="x", kind="redshift", region="us-east-1", provider="aws",
    admin_cidrs=["198.51.100.7/32"],
)
assert 'admin_cidrs = ["198.51.100.7/32"]' in text
print(bastion.templates.template_dir())
"""


def test_a_non_editable_install_finds_its_templates_from_another_directory(tmp_path: Path) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("dbt_bastion-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(target)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == str(target / "bastion" / "templates")
