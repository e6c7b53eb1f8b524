"""What each Debian release's OpenSSH answers to the facts script, as recorded from the
release itself by recorded/algorithms/capture.sh (the `os`, `openssh` and `ssh_algorithms`
sections only)."""

from __future__ import annotations

from pathlib import Path

from bastion.host.fact_sections import FACTS
from bastion.host.facts import SECTION, HostFacts

RECORDED = Path(__file__).parent / "recorded" / "algorithms"
RELEASES = ("debian13", "debian12", "debian11")


def release_facts(name: str) -> HostFacts:
    """The recorded sections, each read by its own fact's parser."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (RECORDED / f"{name}.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith(SECTION):
            current = sections.setdefault(line.removeprefix(SECTION), [])
        else:
            current.append(line)
    assert "end" in sections, f"{name}.txt was cut short"
    facts = HostFacts()
    for fact in FACTS:
        if fact.name in sections:
            fact.parse("\n".join(sections[fact.name]), facts)
    return facts
