"""What the host should hold: the rendered sshd_config, the authorized_keys lines, and the
effective settings `sshd -T` must then report. Computed from config and facts; no I/O.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from bastion.config.rules import host_port
from bastion.config.settings import Settings, TunnelSettings
from bastion.endpoint import Endpoint
from bastion.host.crypto import CryptoProfile, profile, user_key_algorithms, without_group_exchange
from bastion.host.facts import HostFacts, match_address
from bastion.host.paths import VERIFY_KEYS_NAME
from bastion.host.sshd_log import LOG_VERBOSE
from bastion.templates import render

ED25519_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
RSA_HOST_KEY = "/etc/ssh/ssh_host_rsa_key"
KEYS_HEADER = "# Managed by dbt-bastion: one line per configured tunnel key. Edits are drift."


@dataclass(frozen=True)
class DesiredTunnel:
    """One tunnel user's keys and what `sshd -T -C user=…` must report for it."""

    user: str
    keys: list[Any]  # bastion.config.keys.PublicKey, in config order
    effective: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DesiredHost:
    """The target state of the host's files and of sshd's effective settings."""

    sshd_config: str
    crypto: CryptoProfile
    permit_open: str
    nologin: str
    effective: dict[str, str] = field(default_factory=dict)  # sshd -T, global
    tunnels: dict[str, DesiredTunnel] = field(default_factory=dict)  # by tunnel user

    @property
    def sshd_config_sha256(self) -> str:
        return hashlib.sha256(self.sshd_config.encode()).hexdigest()


def permit_open_options(warehouse: Endpoint) -> str:
    """The options sshd enforces for every tunnel key (a second fence behind the Match block)."""
    return f'restrict,port-forwarding,permitopen="{host_port(warehouse.host, warehouse.port)}"'


def key_line(key: Any, warehouse: Endpoint) -> str:
    return f"{permit_open_options(warehouse)} {key.openssh()}"


def _source(cidr: str) -> str:
    """A CIDR as AllowUsers wants it: a single address bare, a network as addr/len."""
    network = ipaddress.ip_network(cidr, strict=False)
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network)


def tunnel_sources(settings: Settings, tunnel: TunnelSettings) -> list[str]:
    """Where a tunnel user may log in from: its own sources (its vendor's regions and its
    extra_cidrs), and admin_cidrs (for verify); never another tunnel's."""
    cidrs = [*tunnel.source_cidrs(), *settings.bastion.admin_cidrs]
    return list(dict.fromkeys(_source(c) for c in cidrs))


def tunnel_addresses(settings: Settings) -> dict[str, str]:
    """An address of each tunnel user's own sources: what `sshd -T -C addr=…` asks with."""
    return {
        tunnel.user: match_address(tunnel_sources(settings, tunnel))
        for tunnel in settings.tunnels.values()
    }


def allow_users(settings: Settings) -> list[str]:
    admin = settings.bastion.admin_user
    entries = [f"{admin}@{_source(c)}" for c in settings.bastion.admin_cidrs]
    for tunnel in settings.tunnels.values():
        entries += [f"{tunnel.user}@{source}" for source in tunnel_sources(settings, tunnel)]
    return list(dict.fromkeys(entries))


def crypto_for(settings: Settings, facts: HostFacts) -> CryptoProfile:
    chosen = profile(
        settings.bastion.ssh_crypto, facts.os_id, facts.os_version, facts.ssh_algorithms
    )
    if facts.moduli_total and facts.moduli_total == facts.moduli_small:
        return without_group_exchange(chosen)
    if not facts.moduli_total:
        return without_group_exchange(chosen)
    return chosen


def render_sshd_config(
    settings: Settings,
    facts: HostFacts,
    warehouse: Endpoint,
    ports: tuple[int, ...] | None = None,
) -> str:
    """`ports`: more than one while an ssh_port change is in its first phase."""
    first = settings.first_tunnel
    return render(
        "sshd_config.j2",
        name=settings.name,
        ssh_ports=list(ports or (settings.bastion.ssh_port,)),
        host_keys=[ED25519_HOST_KEY, RSA_HOST_KEY],
        crypto=crypto_for(settings, facts),
        pubkey_keyword="PubkeyAcceptedAlgorithms"
        if facts.openssh >= (8, 5)
        else "PubkeyAcceptedKeyTypes",
        user_key_algorithms=user_key_algorithms(facts.ssh_algorithms),
        required_rsa_size=facts.openssh >= (9, 1),
        log_verbose=LOG_VERBOSE if facts.openssh >= (8, 5) else "",
        # before 8.7, keyboard-interactive logins also follow ChallengeResponseAuthentication
        challenge_response=facts.openssh < (8, 7),
        penalty_exempt=",".join(settings.bastion.admin_cidrs) if facts.openssh >= (9, 8) else "",
        allow_users=allow_users(settings),
        client_alive_interval=first.client_alive_interval,
        client_alive_count_max=first.client_alive_count_max,
        syslog_facility="AUTHPRIV" if facts.os_id in {"amzn", "rhel", "fedora"} else "AUTH",
        sftp_server=facts.sftp_server,
        tunnels=list(settings.tunnels.values()),
        verify_keys_name=VERIFY_KEYS_NAME,
        permit_open=host_port(warehouse.host, warehouse.port),
        nologin=facts.nologin,
    )


def expected_effective(
    settings: Settings,
    facts: HostFacts,
    warehouse: Endpoint,
    crypto: CryptoProfile,
    ports: tuple[int, ...] | None = None,
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """What `sshd -T` must print, globally and for each tunnel user, keyword by keyword
    (`port` joins its lines in order: sshd -T prints one line per port). The global
    keepalive is the first tunnel's; each tunnel's own is in its Match block."""
    first = settings.first_tunnel
    interval = str(first.client_alive_interval)
    count = str(first.client_alive_count_max)
    common = {
        "port": " ".join(map(str, ports or (settings.bastion.ssh_port,))),
        "permitrootlogin": "no",
        "passwordauthentication": "no",
        "kbdinteractiveauthentication": "no",
        "pubkeyauthentication": "yes",
        "authenticationmethods": "publickey",
        "permitemptypasswords": "no",
        "hostbasedauthentication": "no",
        "authorizedkeyscommand": "none",
        "kexalgorithms": ",".join(crypto.kex),
        "ciphers": ",".join(crypto.ciphers),
        "macs": ",".join(crypto.macs),
        "hostkeyalgorithms": ",".join(crypto.host_key_algorithms),
        "gatewayports": "no",
        "permittunnel": "no",
        "x11forwarding": "no",
        "allowagentforwarding": "no",
        "permituserenvironment": "no",
    }
    if facts.openssh < (8, 7):
        common.pop("kbdinteractiveauthentication")
        common["challengeresponseauthentication"] = "no"
    global_ = {
        **common,
        "allowtcpforwarding": "no",
        "allowstreamlocalforwarding": "no",
        "clientaliveinterval": interval,
        "clientalivecountmax": count,
        "authorizedkeysfile": ".ssh/authorized_keys",
    }
    tunnels = {
        tunnel.user: {
            **common,
            "allowtcpforwarding": "local",
            "allowstreamlocalforwarding": "no",
            "permitopen": host_port(warehouse.host, warehouse.port),
            "permitlisten": "none",
            "permittty": "no",
            "permituserrc": "no",
            "forcecommand": facts.nologin,
            "clientaliveinterval": str(tunnel.client_alive_interval),
            "clientalivecountmax": str(tunnel.client_alive_count_max),
            "authorizedkeysfile": f".ssh/authorized_keys .ssh/{VERIFY_KEYS_NAME}",
        }
        for tunnel in settings.tunnels.values()
    }
    return global_, tunnels


def desired_host(
    settings: Settings,
    facts: HostFacts,
    warehouse: Endpoint,
    ports: tuple[int, ...] | None = None,
) -> DesiredHost:
    crypto = crypto_for(settings, facts)
    effective, effective_tunnels = expected_effective(settings, facts, warehouse, crypto, ports)
    return DesiredHost(
        sshd_config=render_sshd_config(settings, facts, warehouse, ports),
        crypto=crypto,
        permit_open=host_port(warehouse.host, warehouse.port),
        nologin=facts.nologin,
        effective=effective,
        tunnels={
            tunnel.user: DesiredTunnel(tunnel.user, tunnel.configured_keys(), effective_tunnels[tunnel.user])
            for tunnel in settings.tunnels.values()
        },
    )
