"""The lab's wires: two network namespaces, two veth pairs, and the safety route.

    root ns (operator) <-- .0/30 --> bastion ns <-- .4/30 --> warehouse ns

Each lab owns the /24 10.231.<slot>.0 of LAB_RANGE. The bastion namespace does not forward,
so the root namespace reaches the warehouse only through the bastion's sshd.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from dataclasses import dataclass

LAB_RANGE = ipaddress.IPv4Network("10.231.0.0/16")
SLOTS = range(1, 255)
# moto's VPC in the lab account: slot 0, which no lab link serves, so the lab's unreachable
# route covers every private address AWS hands out there
VPC_RANGE = str(next(LAB_RANGE.subnets(new_prefix=24)))
LAB_LINK = re.compile(r"[a-z]{1,4}-[0-9a-f]{6}-o")  # Topology.operator_if


class LabNetworkError(RuntimeError):
    """An `ip` command the lab depends on failed."""


@dataclass(frozen=True)
class Topology:
    """Names and addresses of one lab, all derived from its name and slot."""

    name: str
    slot: int

    @property
    def bastion_ns(self) -> str:
        return f"{self.name}-bastion"

    @property
    def warehouse_ns(self) -> str:
        return f"{self.name}-warehouse"

    @property
    def operator_if(self) -> str:
        """The root namespace's end of the operator <-> bastion link."""
        return f"{self.name}-o"

    @property
    def bastion_if(self) -> str:
        return f"{self.name}-b"

    @property
    def bastion_inner_if(self) -> str:
        return f"{self.name}-d"

    @property
    def warehouse_if(self) -> str:
        return f"{self.name}-w"

    def _address(self, host: int) -> str:
        return str(LAB_RANGE.network_address + self.slot * 256 + host)

    @property
    def operator_address(self) -> str:
        return self._address(1)

    @property
    def bastion_address(self) -> str:
        return self._address(2)

    @property
    def bastion_inner_address(self) -> str:
        return self._address(5)

    @property
    def warehouse_address(self) -> str:
        return self._address(6)

    @property
    def inner_network(self) -> str:
        """The bastion <-> warehouse /30: the only clients the warehouse admits."""
        return f"{self._address(4)}/30"

    @property
    def interfaces(self) -> tuple[str, ...]:
        return (self.operator_if, self.bastion_if, self.bastion_inner_if, self.warehouse_if)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.bastion_ns, self.warehouse_ns)


def ip(
    *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `ip` (iproute2); raise LabNetworkError with its message when `check` fails."""
    result = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabNetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def ensure_safety_route() -> None:
    """Make every lab address unreachable unless a lab link is up for it.

    Without this, a packet to a lab address whose link is down would leave through the
    machine's default route onto a real network. Connected /30s of live labs are more
    specific and win. Refuses to run where the range is in real use.
    """
    for line in ip("-o", "-4", "addr", "show").stdout.splitlines():
        fields = line.split()
        address = ipaddress.IPv4Interface(fields[3])
        if address.ip in LAB_RANGE and not LAB_LINK.fullmatch(fields[1]):
            raise LabNetworkError(f"{LAB_RANGE} is in use on {fields[1]}; the lab needs it free")
    existing = ip("route", "show", "exact", str(LAB_RANGE)).stdout.strip()
    if not existing:
        ip("route", "add", "unreachable", str(LAB_RANGE))
    elif not existing.startswith("unreachable"):
        raise LabNetworkError(f"a route for {LAB_RANGE} exists ({existing}); the lab needs it free")


def remove_safety_route() -> None:
    """Drop the /16 route; the caller checked that no other lab is alive."""
    ip("route", "del", "unreachable", str(LAB_RANGE), check=False)


def safety_route_present() -> bool:
    return "unreachable" in ip("route", "show", "exact", str(LAB_RANGE)).stdout


def create_network(topo: Topology) -> None:
    """Namespaces, links and addresses; forwarding off in both namespaces."""
    t = topo  # every name was derived from a validated prefix and run id: split is safe
    for command in (
        f"netns add {t.bastion_ns}",
        f"netns add {t.warehouse_ns}",
        f"link add {t.operator_if} type veth peer name {t.bastion_if} netns {t.bastion_ns}",
        f"link add {t.bastion_inner_if} netns {t.bastion_ns} type veth"
        f" peer name {t.warehouse_if} netns {t.warehouse_ns}",
        f"addr add {t.operator_address}/30 dev {t.operator_if}",
        f"link set {t.operator_if} up",
    ):
        ip(*command.split())
    bastion = (
        f"addr add {t.bastion_address}/30 dev {t.bastion_if}\n"
        f"addr add {t.bastion_inner_address}/30 dev {t.bastion_inner_if}\n"
        f"link set lo up\nlink set {t.bastion_if} up\nlink set {t.bastion_inner_if} up\n"
    )
    ip("-n", t.bastion_ns, "-batch", "-", stdin=bastion)
    warehouse = (
        f"addr add {t.warehouse_address}/30 dev {t.warehouse_if}\n"
        f"link set lo up\nlink set {t.warehouse_if} up\n"
    )
    ip("-n", t.warehouse_ns, "-batch", "-", stdin=warehouse)
    for ns in t.namespaces:
        forwarding_off = ("net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")
        ip("netns", "exec", ns, "sysctl", "-qw", *forwarding_off)


def add_operator_address(topo: Topology, host: int) -> str:
    """A second address of the operator, in the lab's own /24 (outside both /30s): added to
    the operator's link, and routed back to it from the bastion namespace. It goes away with
    the lab's links; `remove_operator_address` takes it away sooner."""
    if host in range(8) or host not in range(8, 255):
        raise LabNetworkError(f"an extra operator address takes a host number 8-254, not {host}")
    address = topo._address(host)
    ip("addr", "add", f"{address}/32", "dev", topo.operator_if)
    ip("-n", topo.bastion_ns, "route", "add", f"{address}/32", "dev", topo.bastion_if)
    return address


def remove_operator_address(topo: Topology, address: str) -> None:
    ip("-n", topo.bastion_ns, "route", "del", f"{address}/32", check=False)
    ip("addr", "del", f"{address}/32", "dev", topo.operator_if, check=False)


def namespace_inode(ns: str) -> int | None:
    """The inode that names the namespace in /proc/<pid>/ns/net, None if it is gone."""
    try:
        return os.stat(f"/run/netns/{ns}").st_ino
    except FileNotFoundError:
        return None


def namespace_pids(ns: str) -> list[int]:
    """Processes running in a lab namespace (empty when the namespace is gone)."""
    result = ip("netns", "pids", ns, check=False)
    return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []


def destroy_network(topo: Topology) -> None:
    """Remove links and namespaces; anything already gone is fine.

    The operator veth is deleted first and explicitly: that removes both its ends at once,
    where a namespace's deletion frees its devices only later, in the kernel's own time.
    """
    ip("link", "del", topo.operator_if, check=False)
    ip("-n", topo.bastion_ns, "link", "del", topo.bastion_inner_if, check=False)
    for ns in topo.namespaces:
        ip("netns", "del", ns, check=False)


def existing_namespaces() -> list[str]:
    """Names of all network namespaces `ip netns` knows."""
    return [line.split()[0] for line in ip("netns", "list", check=False).stdout.splitlines()]


def existing_interfaces() -> list[str]:
    """Names of the root namespace's interfaces (a veth shows as `name@peer`)."""
    names = []
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        names.append(line.split(":")[1].strip().split("@")[0])
    return names
