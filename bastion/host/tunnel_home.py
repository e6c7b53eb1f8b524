"""The tunnel user's home as bastion finds it on a host it adopts: the account's, not root's.

Nothing in it is followed through a symbolic link (one could point at /etc/shadow or root's
~/.ssh), and the keys found in its authorized_keys are parsed and validated like configured
keys; a line that is not such a key is named by its number only, never shown nor copied.
"""

from __future__ import annotations

from bastion.config.keys import AuthorizedKey, parse_authorized_keys
from bastion.config.settings import Settings
from bastion.errors import HostError
from bastion.host.facts import HostFacts
from bastion.host.paths import VERIFY_KEYS_NAME


def refuse_links(settings: Settings, facts: HostFacts) -> None:
    """A link in the tunnel user's home could point anywhere (/etc/shadow, root's ~/.ssh):
    bastion neither reads nor writes through one, and says so before anything is changed."""
    for tunnel in settings.tunnels.values():
        _refuse_links_of(tunnel.user, facts)


def _refuse_links_of(name: str, facts: HostFacts) -> None:
    home = facts.home_of(name)
    if home is None:
        return
    for path in (home, f"{home}/.ssh", f"{home}/.ssh/authorized_keys",
                 f"{home}/.ssh/{VERIFY_KEYS_NAME}"):  # fmt: skip
        stat = facts.files.get(path)
        if stat is None or stat.kind != "symbolic link":
            continue
        fix = (
            f"make {path} a real directory (or point the account at one with usermod -d)"
            if path == home
            else f"remove the link on the host (sudo rm {path}) and run again: bastion then "
            "writes a file of its own there"
        )
        raise HostError(
            f"{path} is a symbolic link: bastion does not read or write through links in the "
            f"home of {name}, where they could point anywhere; nothing was changed",
            hint=fix,
        )


def numbered_keys(text: str) -> tuple[list[AuthorizedKey], list[int]]:
    """The keys of an authorized_keys file, each parsed and validated like a configured key
    (one per fingerprint), and the numbers of the lines that are not such a key: those are
    reported by number only, never shown nor copied (the file may hold anything)."""
    keys: dict[str, AuthorizedKey] = {}
    invalid: list[int] = []
    for number, line in enumerate(text.split("\n"), start=1):
        entries = parse_authorized_keys(line)
        if not entries:
            continue  # blank, or a comment
        entry = entries[0]
        if entry.key is None or not entry.options.isprintable():
            invalid.append(number)
        else:
            keys.setdefault(entry.key.fingerprint, entry)
    return list(keys.values()), invalid


def kept_line(entry: AuthorizedKey) -> str:
    """A kept key as bastion writes any key: its options, then the key re-encoded."""
    assert entry.key is not None
    return f"{entry.options} {entry.key.openssh()}" if entry.options else entry.key.openssh()
