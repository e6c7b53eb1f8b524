"""The pure parts of verify and doctor: key lines, expiry, messages, judgements of settings.

Nothing here claims a tunnel works; those claims are made on the lab (test_verify_lab.py).
"""

from __future__ import annotations

import socket
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.config.settings import load
from bastion.doctor.aws import _acl_allows
from bastion.doctor.diagnosis import host_findings, keepalive_finding
from bastion.endpoint import Endpoint
from bastion.host.facts import HostFacts
from bastion.pipeline.connection_info import connection_info
from bastion.tunnel.database import Credentials, explain_psycopg, handshake, scrub
from bastion.tunnel.hops import tcp_check
from bastion.tunnel.result import VerifyResult
from bastion.tunnel.verify_key import EphemeralKey, authorized_line, expiry_time, openssh_version
from tests.tunnel.aws_world import free_port

TARGET = Endpoint("10.0.1.5", 5439)


@pytest.fixture
def settings(tmp_path: Path) -> object:
    config = tmp_path / "bastion.toml"
    config.write_text(
        'name = "analytics"\n[warehouse]\nkind = "redshift"\nredshift_cluster = "prod"\n'
        'host = "10.0.1.5"\nport = 5439\n[bastion]\nadmin_cidrs = ["198.51.100.7/32"]\n'
        'address = "203.0.113.10"\n'
    )
    return load(config)


def test_ephemeral_key_line_carries_the_real_keys_restrictions_and_an_expiry() -> None:
    key = EphemeralKey.generate("analytics")
    line = authorized_line(key, TARGET, "20260101120000Z")
    assert line.startswith(
        'restrict,port-forwarding,permitopen="10.0.1.5:5439",expiry-time="20260101120000Z" ssh-ed25519 '
    )
    assert line.endswith(key.comment)
    assert key.comment.startswith("bastion-verify-analytics-")
    assert EphemeralKey.generate("analytics").comment != key.comment


@pytest.mark.parametrize(
    ("banner", "version"),
    [
        ("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u6", (9, 2)),
        ("SSH-2.0-OpenSSH_8.7", (8, 7)),
        ("SSH-2.0-dropbear_2022.83", None),
    ],
)
def test_openssh_version_from_the_banner(banner: str, version: tuple[int, int] | None) -> None:
    assert openssh_version(banner) == version


def test_expiry_is_utc_with_z_from_openssh_9_1() -> None:
    moment = datetime(2026, 11, 24, 8, 30, 15, tzinfo=UTC)
    assert expiry_time(moment, (9, 1), None) == "20261124083015Z"


class _HostClock:
    def local_time(self, moment: datetime) -> str:
        return "20261124093015"


def test_expiry_is_the_hosts_local_time_before_openssh_9_1() -> None:
    moment = datetime(2026, 11, 24, 8, 30, 15, tzinfo=UTC)
    assert expiry_time(moment, (8, 7), _HostClock()) == "20261124093015"  # type: ignore[arg-type]
    assert expiry_time(moment, None, _HostClock()) == "20261124093015"  # type: ignore[arg-type]


def test_tcp_hop_names_a_closed_port_as_refused() -> None:
    hop, banner = tcp_check("127.0.0.1", free_port())
    assert not hop.ok and banner == ""
    assert "refused the connection" in hop.detail and "sshd" in hop.detail


def test_verify_result_is_ok_only_with_all_four_hops() -> None:
    from bastion.tunnel.result import Hop

    result = VerifyResult("h", 22, "w:1", hops=[Hop("tcp", True, 1.0, "")])
    assert not result.ok
    result.hops += [Hop(n, True, 1.0, "") for n in ("ssh", "forward", "database")]
    assert result.ok
    assert result.to_dict()["hops"][0] == {"name": "tcp", "ok": True, "ms": 1.0, "detail": ""}


def test_psycopg_error_becomes_the_servers_sentence() -> None:
    error = Exception(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
        'FATAL:  password authentication failed for user "dbt"'
    )
    assert explain_psycopg(error) == 'password authentication failed for user "dbt"'


def test_scrub_removes_the_password() -> None:
    creds = Credentials("dbt", "s3cret-value", "env")
    assert scrub("oops s3cret-value leaked", creds) == "oops *** leaked"
    assert "s3cret" not in repr(creds)


def _server_says(reply: bytes, settings: object) -> str:
    client, server = socket.socketpair()
    with client, server:
        server.sendall(reply)
        outcome = handshake(client, settings)  # type: ignore[arg-type]
        startup = server.recv(4096)
    assert struct.unpack("!i", startup[4:8])[0] == 196608
    assert b"user\0dbt\0" in startup
    return outcome.detail if outcome.ok else f"FAIL {outcome.detail}"


def test_handshake_counts_an_auth_request_as_reachable(settings: object) -> None:
    detail = _server_says(b"R" + struct.pack("!ii", 8, 10), settings)
    assert "SASL (SCRAM)" in detail and "login not tested" in detail


def test_handshake_refuses_something_that_is_not_postgres(settings: object) -> None:
    assert _server_says(b"HTTP/1.1 400 Bad", settings).startswith("FAIL")


@pytest.mark.parametrize(
    ("interval", "count", "status"),
    [(30, 10, "ok"), (30, 3, "fail"), (0, 3, "warn"), (60, 10, "warn"), (15, 20, "ok")],
)
def test_keepalive_is_judged_against_dbt_30_s_and_300_s(
    interval: int, count: int, status: str
) -> None:
    assert keepalive_finding(interval, count, "host", "x").status == status


def _facts(**sshd: str) -> HostFacts:
    facts = HostFacts()
    facts.sshd_tunnel = {k: [v] for k, v in sshd.items()}
    return facts


def test_host_findings_read_the_tunnel_users_effective_settings(settings: object) -> None:
    good = _facts(clientaliveinterval="30", clientalivecountmax="10",
                  allowtcpforwarding="local", permitopen="10.0.1.5:5439")  # fmt: skip
    assert {f.status for f in host_findings(settings, good, TARGET)} == {"ok"}  # type: ignore[arg-type]
    bad = _facts(clientaliveinterval="30", clientalivecountmax="10",
                 allowtcpforwarding="no", permitopen="10.0.1.6:5439")  # fmt: skip
    found = {f.link: f.status for f in host_findings(settings, bad, TARGET)}  # type: ignore[arg-type]
    assert found["host.forwarding"] == "fail" and found["host.permitopen"] == "fail"


ALLOW_ALL = {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "CidrBlock": "0.0.0.0/0"}


@pytest.mark.parametrize(
    ("entries", "allowed"),
    [
        ([ALLOW_ALL], True),
        ([], False),
        ([ALLOW_ALL, {"RuleNumber": 50, "Protocol": "6", "RuleAction": "deny",
                      "CidrBlock": "52.45.0.0/16", "PortRange": {"From": 22, "To": 22}}], False),
        ([ALLOW_ALL, {"RuleNumber": 150, "Protocol": "6", "RuleAction": "deny",
                      "CidrBlock": "52.45.0.0/16", "PortRange": {"From": 22, "To": 22}}], True),
        ([{"RuleNumber": 10, "Protocol": "6", "RuleAction": "allow",
           "CidrBlock": "52.45.144.63/32", "PortRange": {"From": 22, "To": 22}}], True),
    ],
)  # fmt: skip
def test_network_acl_is_evaluated_in_rule_number_order(
    entries: list[dict[str, object]], allowed: bool
) -> None:
    assert _acl_allows(entries, egress=False, cidr="52.45.144.63/32", port=22) is allowed


def test_connection_info_uses_env_var_references_only(settings: object) -> None:
    info = connection_info(settings, "203.0.113.10", TARGET)  # type: ignore[arg-type]
    fields = dict(info.fields())
    assert fields["Hostname"] == "10.0.1.5" and fields["SSH tunnel hostname"] == "203.0.113.10"
    assert fields["SSH tunnel username"] == "dbtcloud" and fields["Port"] == "5439"
    profile = info.profiles_yml()
    assert "password: \"{{ env_var('DBT_ENV_SECRET_PASSWORD') }}\"" in profile
    assert "type: redshift" in profile


def test_connection_info_iam_variant(settings: object) -> None:
    iam = settings.model_copy(  # type: ignore[attr-defined]
        update={"warehouse": settings.warehouse.model_copy(update={"auth": "iam"})}  # type: ignore[attr-defined]
    )
    profile = connection_info(iam, "203.0.113.10", TARGET).profiles_yml()
    assert "method: iam" in profile and "cluster_id: prod" in profile
    assert "password:" not in profile


class _StubbedSession:
    """A boto3 session whose one client is botocore-stubbed (moto has no redshift-serverless)."""

    def __init__(self, service: str) -> None:
        import boto3
        from botocore.stub import Stubber

        self.client_ = boto3.Session(
            region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
        ).client(service)  # type: ignore[call-overload]
        self.stubber = Stubber(self.client_)

    def client(self, service: str, **config: object) -> object:
        return self.client_


def test_serverless_iam_credentials_come_from_get_credentials(settings: object) -> None:
    from bastion.aws.gateway import AwsGateway
    from bastion.tunnel.database import iam_credentials

    serverless = settings.model_copy(update={"warehouse": settings.warehouse.model_copy(  # type: ignore[attr-defined]
        update={"kind": "redshift-serverless", "redshift_cluster": "", "workgroup": "wg-prod", "auth": "iam"})})  # fmt: skip
    session = _StubbedSession("redshift-serverless")
    session.stubber.add_response(
        "get_credentials", {"dbUser": "IAM:dbt", "dbPassword": "temporary-secret"},
        {"workgroupName": "wg-prod", "dbName": "analytics", "durationSeconds": 900},
    )  # fmt: skip
    session.stubber.activate()
    creds = iam_credentials(serverless, AwsGateway(session))  # type: ignore[arg-type]
    assert (creds.user, creds.password, creds.source) == (
        "IAM:dbt",
        "temporary-secret",
        "redshift-serverless IAM",
    )
    session.stubber.assert_no_pending_responses()


def test_iam_refusal_is_a_message_not_a_traceback(settings: object) -> None:
    from bastion.aws.gateway import AwsGateway
    from bastion.tunnel.database import CredentialsError, iam_credentials

    iam = settings.model_copy(
        update={"warehouse": settings.warehouse.model_copy(update={"auth": "iam"})}
    )  # type: ignore[attr-defined]
    session = _StubbedSession("redshift")
    session.stubber.add_client_error("get_cluster_credentials", "AccessDenied", "not allowed")
    session.stubber.activate()
    with pytest.raises(CredentialsError, match="allow redshift:GetClusterCredentials"):
        iam_credentials(iam, AwsGateway(session))  # type: ignore[arg-type]


def test_a_left_over_verify_key_is_a_warning(settings: object) -> None:
    from bastion.host.facts import FileStat

    facts = _facts(clientaliveinterval="30", clientalivecountmax="10",
                   allowtcpforwarding="local", permitopen="10.0.1.5:5439")  # fmt: skip
    facts.files["/home/dbtcloud/.ssh/authorized_keys.verify"] = FileStat(
        "dbtcloud", "dbtcloud", 0o600, "regular file"
    )
    found = {f.link: f.status for f in host_findings(settings, facts, TARGET)}  # type: ignore[arg-type]
    assert found["host.verify_key"] == "warn"


class _RecordingHost:
    """Stands in for the admin side only, to watch what verify asks of it and when."""

    def __init__(self, fail_install: bool = False) -> None:
        self.fail_install = fail_install
        self.calls: list[str] = []

    def install(self, line: str) -> None:
        self.calls.append("install")
        if self.fail_install:
            raise OSError("connection lost mid-write")

    def remove(self, line: str) -> None:
        self.calls.append("remove")

    def local_time(self, moment: datetime) -> str:
        return moment.strftime("%Y%m%d%H%M%S")

    def close(self) -> None:
        self.calls.append("close")


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_the_key_is_removed_whatever_ends_the_run(
    settings: object, interrupt: type[BaseException]
) -> None:
    from datetime import timedelta

    from bastion.tunnel.verify import _installed

    host = _RecordingHost()
    key = EphemeralKey.generate("analytics")
    with (
        pytest.raises(interrupt),
        _installed(key, TARGET, "SSH-2.0-OpenSSH_9.6", host, timedelta(minutes=1)),
    ):  # type: ignore[arg-type]
        raise interrupt
    assert host.calls == ["install", "remove"], "the admin login stays for the next user"


def test_a_failed_install_is_cleaned_up_too(settings: object) -> None:
    from datetime import timedelta

    from bastion.tunnel.verify import _installed

    host = _RecordingHost(fail_install=True)
    key = EphemeralKey.generate("analytics")
    with (
        pytest.raises(OSError),
        _installed(key, TARGET, "SSH-2.0-OpenSSH_9.6", host, timedelta(minutes=1)),
    ):  # type: ignore[arg-type]
        pass
    assert host.calls == ["install", "remove"], "the admin login stays for the next user"
