#!/bin/sh
# Records what a Debian release's OpenSSH answers to the facts script's `os`, `openssh` and
# `ssh_algorithms` facts: their commands, taken from bastion.host.fact_sections, run as the
# facts script runs them, inside a root filesystem made by debootstrap (with openssh-server).
# The root filesystem is only read. chroot needs root.
#
#   debootstrap --include=openssh-server trixie /tmp/dbs/trixie     # likewise bookworm, bullseye
#   tests/host/recorded/algorithms/capture.sh /tmp/dbs/trixie /tmp/dbs/bookworm /tmp/dbs/bullseye
#
# Each writes debian<VERSION_ID>.txt beside this script.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}

script=$(cd "$repo" && "$python" - <<'PY'
from bastion.host.fact_sections import FACTS
from bastion.host.facts import SECTION

for fact in FACTS:
    if fact.name in ("os", "openssh", "ssh_algorithms"):
        print(f"echo '{SECTION}{fact.name}'\n{{ {fact.command} ; }} 2>/dev/null")
print(f"echo '{SECTION}end'")
PY
)

for root in "$@"; do
    version=$(. "$root/etc/os-release" && echo "$VERSION_ID")
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C chroot "$root" /bin/sh -c "$script" \
        >"$here/debian$version.txt"
    echo "$root -> $here/debian$version.txt"
done
