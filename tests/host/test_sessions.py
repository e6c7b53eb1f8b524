"""sshd's log made into sessions and refused attempts, on real logs of OpenSSH 10.0, 9.2 and
8.4 (tests/host/recorded/sessions: capture.py there recorded them, and what it did, on the
lab's Debian 13, 12 and 11 hosts)."""

from __future__ import annotations

import base64
import gzip
import ipaddress
import itertools
import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from bastion.errors import HostError, InputError
from bastion.host.connection import HostConnection
from bastion.host.journald import (
    Journald,
    overridden,
    parse_journald,
    retention_change,
    timespan_seconds,
)
from bastion.host.log_read import SshdLog, answer_lines, login_filter, parse_answer, parse_lines
from bastion.host.sessions import (
    ADDRESS_NOT_ALLOWED,
    FORWARD_REFUSED,
    KEY_NOT_ALLOWED,
    SHELL_REFUSED,
    Session,
    SessionReport,
    Sources,
    build_report,
    key_comments,
)
from bastion.host.sshd_log import (
    HOST_FILTER,
    PART,
    FieldsMisaligned,
    read_entries,
    read_field_entries,
)
from bastion.pipeline.sessions import parse_since, read_logins, tunnel_users
from tests.host.conftest import MakeConfig

RECORDED = Path(__file__).parent / "recorded" / "sessions"
RELEASES = ("13", "12", "11")  # Debian: OpenSSH 10.0, 9.2, 8.4


def scenario(release: str) -> dict[str, Any]:
    return dict(json.loads((RECORDED / f"debian{release}.json").read_text()))


def sources(record: dict[str, Any]) -> Sources:
    """As Sources.of makes them for the capture's config: extra_cidrs the /30 .8, admin the operator."""
    prefix = record["operator"].rsplit(".", 1)[0]
    return Sources((
        (ipaddress.ip_network(f"{prefix}.8/30"), "extra_cidrs"),
        (ipaddress.ip_network(f"{record['operator']}/32"), "admin_cidrs"),
    ))  # fmt: skip


def report_of(log: SshdLog, record: dict[str, Any]) -> SessionReport:
    return build_report(log, [record["user"]], sources(record), key_comments(log))


def recorded_report(release: str) -> tuple[SessionReport, dict[str, Any]]:
    record = scenario(release)
    log = parse_answer((RECORDED / f"debian{release}.answer.txt").read_text())
    return report_of(log, record), record


def short_lines(release: str) -> list[str]:
    """The recorded journal in journalctl's short format, as the host's grep leaves it: what
    the answer's log would be in that format (a host with other entries than syslog's, or a
    second reading after FieldsMisaligned)."""
    pattern = re.compile(HOST_FILTER)
    journal = (RECORDED / f"debian{release}.journal.txt").read_text().splitlines()
    return [line for line in journal if pattern.search(line)]


def field_lines(release: str) -> list[str]:
    """The recorded answer's log: journald's fields, joined by tabs."""
    lines = (RECORDED / f"debian{release}.answer.txt").read_text().splitlines()
    assert "@@bastion-log fields" in lines
    return lines[lines.index("@@bastion-log log") + 1 : -1]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def within(moment: datetime, span: list[str], slack: float = 1.0) -> bool:
    return at(span[0]) - timedelta(seconds=slack) <= moment <= at(span[1]) + timedelta(seconds=slack)


def by_port(report: SessionReport) -> dict[int, Session]:
    return {s.port: s for s in report.sessions}


@pytest.mark.parametrize("release", RELEASES)
def test_every_session_the_capture_made_and_no_other(release: str) -> None:
    report, record = recorded_report(release)
    ports = [record[name]["port"] for name in
             ("session_a", "session_b", "session_c", "session_d")]  # fmt: skip
    assert len(report.sessions) == 6
    assert set(ports) <= set(by_port(report))
    assert report.source == "journald"


@pytest.mark.parametrize("release", RELEASES)
def test_interleaved_sessions_are_told_apart(release: str) -> None:
    """B logged in, forwarded and left while A was open; each keeps its own forwards."""
    report, record = recorded_report(release)
    keys = record["keys"]
    sessions = by_port(report)
    a, b = sessions[record["session_a"]["port"]], sessions[record["session_b"]["port"]]
    assert (a.key, a.address, a.source) == (keys["dbt-cloud-a"], record["operator"], "admin_cidrs")
    assert (b.key, b.address, b.source) == (keys["dbt-cloud-b"], record["extra"], "extra_cidrs")
    # the comments come from the host's authorized_keys, in the same answer
    assert (a.key_comment, b.key_comment) == ("dbt-cloud-a", "dbt-cloud-b")
    assert a.start < b.start and b.end is not None and a.end is not None and b.end < a.end
    assert within(a.start, record["session_a"]["login"])
    assert within(b.start, record["session_b"]["login"])
    assert within(a.end, [record["session_a"]["closed"]] * 2)
    if report.forwards_logged:  # LogVerbose: OpenSSH 8.5 and later
        assert a.forwards == {record["warehouse"]: 2}
        assert b.forwards == {record["warehouse"]: 1}
    else:
        assert release == "11" and a.forwards == b.forwards == {}


@pytest.mark.parametrize("release", RELEASES)
def test_a_silent_client_ends_by_keepalive_and_the_last_is_still_open(release: str) -> None:
    report, record = recorded_report(release)
    frozen = next(s for s in report.sessions if s.ended == "keepalive timeout")
    assert within(frozen.start, record["session_frozen"]["login"])
    assert frozen.key == record["keys"]["dbt-cloud-b"]
    last = report.sessions[-1]
    assert last.port == record["session_e"]["port"] and last.end is None and last.ended == ""
    assert last.seconds == pytest.approx(max(0.0, (report.now - last.start).total_seconds()), abs=0.1)


@pytest.mark.parametrize("release", RELEASES)
def test_refused_attempts_grouped_by_user_address_and_reason(release: str) -> None:
    report, record = recorded_report(release)
    refused = {(r.reason, r.address): r for r in report.refused}
    operator, outsider, prober = record["operator"], record["outsider"], record["prober"]
    assert set(refused) == {
        (KEY_NOT_ALLOWED, prober), (ADDRESS_NOT_ALLOWED, outsider),
        (FORWARD_REFUSED, operator), (SHELL_REFUSED, operator),
    }  # fmt: skip
    stranger = refused[(KEY_NOT_ALLOWED, prober)]
    assert stranger.source == "extra_cidrs"
    # C offered the stranger's key before one that logged in: that is no refused attempt
    assert (stranger.count, stranger.details) == (1, (record["keys"]["stranger"],))
    assert within(stranger.last, record["refused_key"]["span"])
    outside = refused[(ADDRESS_NOT_ALLOWED, outsider)]
    assert (outside.count, outside.source, outside.details) == (1, "unknown",
                                                                ("not listed in AllowUsers",))
    assert within(outside.last, record["refused_address"]["span"])
    forward = refused[(FORWARD_REFUSED, operator)]
    assert (forward.count, forward.details) == (1, (record["refused_target"],))
    shell = refused[(SHELL_REFUSED, operator)]
    # OpenSSH 8.4 has no LogVerbose: the refused PTY leaves no line there
    assert shell.count == (1 if release == "11" else 2)
    assert all(r.user == record["user"] for r in report.refused)


@pytest.mark.parametrize("release", RELEASES)
def test_the_host_filter_keeps_every_line_that_matters(release: str) -> None:
    """The answer (lines grep kept on the host) and the whole journal give the same report."""
    filtered, record = recorded_report(release)
    answer = parse_answer((RECORDED / f"debian{release}.answer.txt").read_text())
    journal = (RECORDED / f"debian{release}.journal.txt").read_text().splitlines()
    whole = report_of(SshdLog(now=filtered.now, lines=journal, forwards_logged=filtered.forwards_logged,
                              authorized_keys=answer.authorized_keys), record)  # fmt: skip
    assert [s.to_dict() for s in whole.sessions] == [s.to_dict() for s in filtered.sessions]
    assert [r.to_dict() for r in whole.refused] == [r.to_dict() for r in filtered.refused]
    pattern = re.compile(HOST_FILTER)
    assert len([line for line in journal if pattern.search(line)]) < len(journal)


@pytest.mark.parametrize("release", RELEASES)
def test_logins_alone_give_each_keys_last_login(release: str) -> None:
    """What `keys` and `doctor` read: the login lines only (the host's grep, applied here)."""
    full, record = recorded_report(release)
    pattern = re.compile(login_filter([record["user"]]))
    journal = (RECORDED / f"debian{release}.journal.txt").read_text().splitlines()
    lines = [line for line in journal if pattern.search(line)]
    logins = report_of(SshdLog(now=full.now, lines=lines), record).last_logins()
    expected = full.last_logins()
    assert set(logins) == set(expected) == {record["keys"]["dbt-cloud-a"],
                                            record["keys"]["dbt-cloud-b"]}  # fmt: skip
    for key, session in logins.items():
        assert (session.start, session.address) == (expected[key].start, expected[key].address)


@pytest.mark.parametrize("release", RELEASES)
def test_syslog_files_read_as_journald(release: str) -> None:
    """The same real lines in /var/log/auth.log's forms: RFC 3339 (Debian 12's rsyslog) and
    traditional (`Nov 30 08:44:35`, local time: here UTC+1) give the same sessions."""
    journal_report, record = recorded_report(release)
    body = short_lines(release)
    iso = re.compile(r"(\S+) (\S+ \S+\[\d+\]: .*)")
    traditional = []
    for line in body:
        match = iso.fullmatch(line)
        if match is None:
            continue
        local = datetime.fromisoformat(re.sub(r"(\+\d\d)(\d\d)$", r"\1:\2", match[1])) + timedelta(hours=1)
        traditional.append(f"{local:%b} {local.day:2d} {local:%H:%M:%S} {match[2]}")
    log = SshdLog(now=journal_report.now, utc_offset=timedelta(hours=1), source="files",
                  lines=traditional, forwards_logged=journal_report.forwards_logged)  # fmt: skip
    report = report_of(log, record)
    assert [(s.port, s.key, s.start.replace(microsecond=0)) for s in report.sessions] == [
        (s.port, s.key, s.start.replace(microsecond=0)) for s in journal_report.sessions
    ]
    assert [(r.reason, r.count) for r in report.refused] == [
        (r.reason, r.count) for r in journal_report.refused
    ]


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("size", [1, 7, 1000])
def test_the_answer_read_as_it_arrives_gives_the_report_of_the_whole(release: str, size: int) -> None:
    """The host's answer is made into sessions while it arrives, in pieces that cut gzip's
    blocks and the lines anywhere: the same lines and the same report as the whole text."""
    text = (RECORDED / f"debian{release}.answer.txt").read_text()
    for data in (gzip.compress(text.encode()), text.encode()):  # a host without gzip: plain
        assert list(answer_lines(_pieces(data, size))) == text.splitlines()
    whole, record = recorded_report(release)
    log = parse_lines(answer_lines(_pieces(gzip.compress(text.encode()), size)))
    streamed = report_of(log, record)
    assert [s.to_dict() for s in streamed.sessions] == [s.to_dict() for s in whole.sessions]
    assert [r.to_dict() for r in streamed.refused] == [r.to_dict() for r in whole.refused]
    assert (log.now, log.authorized_keys, log.begins) == (whole.now, parse_answer(text).authorized_keys,
                                                          whole.begins)  # fmt: skip


def test_lines_cut_inside_a_character_are_whole_and_only_a_newline_ends_one() -> None:
    """A line ends at "\\n" only: a message holding another line break (\\x1c, \\r, U+2028)
    stays one line, and cannot pass for a line of its own with a stamp and pid it chose."""
    text = "é\r\nü x\u2028y\rz\x1c1796000000000000\t4242\tDisconnected\n\n€ end"
    expected = ["é\r", "ü x\u2028y\rz\x1c1796000000000000\t4242\tDisconnected", "", "€ end"]
    assert list(answer_lines(_pieces(text.encode(), 1))) == expected
    assert list(answer_lines(_pieces(gzip.compress(text.encode()) * 2, 3))) == [
        *expected[:-1], "€ endé\r", *expected[1:]]  # fmt: skip
    assert list(answer_lines([(text + "\n").encode()])) == expected


def test_an_answer_cut_short_is_an_error() -> None:
    """The end mark is the last line: an answer without it (the script died, gzip broke) is
    the host's failure, not a shorter log."""
    lines = (RECORDED / "debian13.answer.txt").read_text().splitlines()
    assert lines[-1] == "@@bastion-log end"

    def missing_end() -> None:
        raise HostError("cut short")

    whole = gzip.compress("\n".join(lines).encode())
    assert len(list(parse_lines(answer_lines([whole]), missing_end).lines)) > 10
    for raw in (whole[:-30], gzip.compress("\n".join(lines[:-1]).encode()),
                gzip.compress("\n".join(lines[:3]).encode())):  # fmt: skip
        with pytest.raises(HostError, match="cut short"):
            list(parse_lines(answer_lines([raw]), missing_end).lines)


def _session_a_child() -> tuple[SessionReport, dict[str, Any], list[str], int, int]:
    """Debian 13's recording: its report and record, the log's lines, session A's port, and
    the index of the line that names A's child."""
    report, record = recorded_report("13")
    body = short_lines("13")
    a = record["session_a"]["port"]
    login = next(i for i, line in enumerate(body) if f"port {a} ssh2" in line)
    child = next(i for i in range(login, len(body)) if "User child is on pid" in body[i])
    return report, record, body, a, child


def test_a_reboot_ends_the_pid_namespace() -> None:
    """After `-- Boot … --` a pid seen before names another process: A's child, whose
    forwards come after a boot marker put in here, is no longer A's."""
    report, record, body, a, child = _session_a_child()
    marked = [*body[: child + 1], "-- Boot 0123456789abcdef0123456789abcdef --", *body[child + 1 :]]
    entries = list(read_entries(marked, now=report.now))
    assert {e.boot for e in entries[: child + 1]} == {0} and {e.boot for e in entries[child + 1 :]} == {1}
    boot = entries[child + 1].time  # journald lists when the boot began
    rebooted = report_of(SshdLog(now=report.now, lines=marked, forwards_logged=True,
                                 boots=[entries[0].time.replace(microsecond=0), boot]), record)  # fmt: skip
    assert by_port(report)[a].forwards and not by_port(rebooted)[a].forwards
    # sshd logged no end of A before the boot: it ended then
    session = by_port(rebooted)[a]
    assert (session.end, session.ended) == (boot, "host rebooted")
    assert session.seconds == (session.end - session.start).total_seconds()
    assert by_port(report)[a].ended != "host rebooted"


def test_a_childs_line_ahead_of_its_parents_is_still_its_sessions() -> None:
    """The child and its parent log on their own: on a busy host the child's first forward
    reaches the journal before `User child is on pid N` does, and still counts."""
    report, record, body, a, child = _session_a_child()
    pid = body[child].rsplit(" ", 1)[1]
    first = next(i for i in range(child, len(body)) if f"[{pid}]: debug1: " in body[i])
    early = [*body[:child], body[first], *body[child:first], *body[first + 1 :]]
    assert early != body
    reordered = report_of(SshdLog(now=report.now, lines=early, forwards_logged=True), record)
    assert by_port(reordered)[a].forwards == by_port(report)[a].forwards == {record["warehouse"]: 2}


def _values(release: str) -> list[tuple[str, str, str]]:
    """The recorded answer's entries as journalctl printed their fields: (stamp, pid, message)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [(str((e.time - epoch) // timedelta(microseconds=1)), str(e.pid), e.message)
            for e in read_field_entries(field_lines(release))]  # fmt: skip


@pytest.mark.parametrize("release", RELEASES)
def test_journald_fields_read_as_the_short_format_does(release: str) -> None:
    """The same entries from journald's fields (the answer) as from journalctl's short format
    (the journal recorded beside it): time to the microsecond, pid and message."""
    fields = [(e.time, e.pid, e.message) for e in read_field_entries(field_lines(release))
              if re.search(HOST_FILTER, e.message)]  # the first line passes the host's filter
    short = [(e.time, e.pid, e.message) for e in read_entries(short_lines(release), now=datetime.now(UTC))]
    assert len(fields) > 40 and fields == short[: len(fields)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_the_fields_in_any_order_read_alike(order: tuple[int, int, int]) -> None:
    """journalctl picks the fields' order for each run: each of the six reads the same, a
    tab inside a message (not sshd's own) included."""
    values = _values("13")
    values[5] = (values[5][0], values[5][1], values[5][2] + "\twith a tab")
    lines = ["\t".join(entry[i] for i in order) for entry in values]
    expected = list(read_field_entries("\t".join(entry) for entry in values))
    assert list(read_field_entries(lines)) == expected
    assert expected[5].message.endswith("\twith a tab")
    # two parts of the log, each read by a journalctl of its own, each with its own order
    other = ["\t".join(entry[i] for i in order[::-1]) for entry in values]
    assert list(read_field_entries([*lines[:20], PART, *other[20:]])) == expected


def test_an_entry_of_more_lines_puts_the_fields_out_of_step() -> None:
    """Another program logging as sshd with a newline in its message (`logger -t sshd`)
    prints four lines where the joining expects three: the lines after it are refused, not
    read as other entries; as is a first line that is no entry's three fields."""
    raw = [field for entry in _values("13") for field in (entry[2], entry[0], entry[1])]
    at = raw.index(next(m for m, *_ in [(e[2],) for e in _values("13")] if m.startswith("User child")))
    shifted = [*raw[: at + 1], "and another line", *raw[at + 1 :]]
    joined = ["\t".join(shifted[i : i + 3]) for i in range(0, len(shifted) - 2, 3)]
    with pytest.raises(FieldsMisaligned):
        list(read_field_entries(joined))
    with pytest.raises(FieldsMisaligned):
        list(read_field_entries(["one line\tand another\tand a third", *joined]))
    for short in ("no tab at all", "one\ttab", ""):
        for order in itertools.permutations(range(3)):
            whole = ["\t".join(entry[i] for i in order) for entry in _values("13")[:3]]
            with pytest.raises(FieldsMisaligned):
                list(read_field_entries([*whole, short]))
            with pytest.raises(FieldsMisaligned):
                list(read_field_entries([short, *whole]))
    assert len(list(read_field_entries(joined[: at // 3]))) == at // 3


@pytest.mark.parametrize("stamp", ["1_793_487_479_143", " 1793487479143", "+1793487479143",
                                   "\u0661" * 16, "1793487479143x"])
def test_a_stamp_is_ascii_digits_alone(stamp: str) -> None:
    """What Python's int() would also take (underscores, a space, a sign, another script's
    digits) where the stamp belongs is a line out of step, not an entry of that time."""
    lines = ["\t".join(entry) for entry in _values("13")[:3]]
    _, pid, message = _values("13")[1]
    with pytest.raises(FieldsMisaligned):
        list(read_field_entries([*lines, f"{stamp}\t{pid}\t{message}"]))
    with pytest.raises(FieldsMisaligned):
        list(read_field_entries([*lines, f"{_values('13')[1][0]}\t {pid}\t{message}"]))


def _host_joins(raw: list[str]) -> list[str]:
    """What the host's `paste - - - | { read first; grep }` makes of journalctl's lines."""
    joined = ["\t".join(raw[i : i + 3]) for i in range(0, len(raw) - 2, 3)]
    pattern = re.compile(HOST_FILTER)
    return joined[:1] + [line for line in joined[1:] if pattern.search(line)]


@pytest.mark.parametrize("at", [0, 1, 30])
def test_a_shift_hidden_by_the_hosts_filter_is_still_out_of_step(at: int) -> None:
    """An entry of four lines shifts every joined line after it. Where it comes before any
    line the filter keeps (the log begins with PAM's lines), the first kept line is already
    shifted; the first line of each journalctl passes unfiltered, so the order is read from
    a whole entry and the shifted lines do not fit it: FieldsMisaligned (read again in the
    short format), never entries made of two."""
    pam = "pam_env(sshd:session): Unable to open env file: /etc/default/locale"
    values = [(str(1796000000000000 + i), str(90 + i), pam) for i in range(3)] + _values("13")
    raw = [field for entry in values for field in (entry[0], entry[2], entry[1])]
    whole = list(read_field_entries("\t".join(v) for v in values))
    kept = [whole[0], *(e for e in whole[1:] if re.search(HOST_FILTER, e.message))]
    assert list(read_field_entries(_host_joins(raw))) == kept
    shifted = [*raw[: 3 * at + 2], "and a second line", *raw[3 * at + 2 :]]
    with pytest.raises(FieldsMisaligned):
        list(read_field_entries(_host_joins(shifted)))


class _Host:
    """Stands in for an admin connection: each command answers the next text, in pieces,
    and notes when its channel opens and closes (and with which format, $3 of the script)."""

    address = "192.0.2.1"

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.events: list[str] = []

    def sudo_stream(
        self, script: str, *args: str, timeout: float | None = None, sent: Any = None
    ) -> Any:
        data, events, form = self.answers.pop(0).encode(), self.events, args[2]

        class Answer:
            status, errors = 0, b""

            def chunks(self) -> Any:
                events.append(f"open {form}")
                if sent is not None:
                    sent()
                try:
                    yield from _pieces(data, 500)
                finally:
                    events.append(f"close {form}")

        return Answer()


def _misaligned_then_short() -> _Host:
    """A host whose first answer (Debian 13's recording) falls out of step five lines into
    the log, and whose second is the same log in journalctl's short format."""
    lines = (RECORDED / "debian13.answer.txt").read_text().splitlines()
    start = lines.index("@@bastion-log log") + 1
    misaligned = [*lines[: start + 5], "and a second line\t1796000000000000\t90", *lines[start + 5 :]]
    head = [line for line in lines[:start] if not line.startswith(("@@bastion-log boot", "@@bastion-log fields"))]
    short = [*head, *short_lines("13"), "@@bastion-log end"]
    return _Host("\n".join(misaligned) + "\n", "\n".join(short) + "\n")


def test_fields_out_of_step_are_read_again_in_the_short_format(make_config: MakeConfig) -> None:
    """The first answer's fields fall out of step: its channel closes, then the log is read
    again in journalctl's short format (a second command), and the report is the recording's."""
    settings = make_config()
    host = _misaligned_then_short()
    log, report = read_logins(settings, cast(HostConnection, host))
    assert host.events == ["open fields", "close fields", "open short", "close short"]
    assert not log.fields
    recorded = recorded_report("13")[0]
    assert set(report.last_logins()) == set(recorded.last_logins()) != set()


def test_waiting_is_told_each_command_that_reads_the_log_is_sent(make_config: MakeConfig) -> None:
    """`sessions` loads its output's modules while the host reads: the callback runs once a
    command is sent, for the second command too."""
    from bastion.pipeline.sessions import _read

    settings = make_config()
    host = _misaligned_then_short()
    _read(settings, cast(HostConnection, host), ["dbtcloud"], 86400,
          waiting=lambda: host.events.append("waiting"))  # fmt: skip
    assert host.events == ["open halves", "waiting", "close halves", "open short", "waiting",
                           "close short"]  # fmt: skip


def test_a_host_without_an_sshd_log_is_an_error_unless_the_log_decides_nothing(
    make_config: MakeConfig, tunnel_key: str
) -> None:
    """No journald, no auth.log or secure: `sessions`, `keys list`, `doctor` cannot answer
    (HostError naming the fix); `keys remove --force` still reads the authorized_keys."""
    settings = make_config(public_keys=[tunnel_key])
    encoded = base64.b64encode(f"{tunnel_key}\n".encode()).decode()
    answer = (f"@@bastion-log now 2026-11-30T08:00:00.000000Z +0000\n@@bastion-log keys dbtcloud\n"
              f"{encoded}\n@@bastion-log source none\n@@bastion-log end\n")  # fmt: skip
    with pytest.raises(HostError, match="keeps no sshd log bastion can read"):
        read_logins(settings, cast(HostConnection, _Host(answer)))
    log, report = read_logins(settings, cast(HostConnection, _Host(answer)), need_log=False)
    assert log.authorized_keys == {"dbtcloud": f"{tunnel_key}\n"}
    assert report.sessions == [] and report.refused == []


def test_verify_keys_lines_pass_the_filters_and_mark_the_session() -> None:
    """`Accepted key ... found at` stays on the host unless the file is bastion's verify keys
    (grep -E on the host, re here): a session of verify's own key is told apart."""
    verify = "Accepted key ED25519 SHA256:" + "v" * 43 + " found at /home/dbtcloud/.ssh/authorized_keys.verify:1"
    tool = "Accepted key ED25519 SHA256:" + "t" * 43 + " found at /home/dbtcloud/.ssh/authorized_keys:2"
    for pattern in (HOST_FILTER, login_filter(["dbtcloud"])):
        assert re.search(pattern, verify) and not re.search(pattern, tool)
        grep = subprocess.run(["grep", "-E", "--", pattern], input=f"{verify}\n{tool}\n",
                              capture_output=True, text=True, check=True)  # fmt: skip
        assert grep.stdout == f"{verify}\n"
    t = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    lines = [*_login(t, 100, 101, "10.231.1.1", 4000)]
    lines.insert(1, _journal(t, 100, verify.replace("v" * 43, "k" * 43)))
    report = build_report(SshdLog(now=t + timedelta(minutes=1), lines=lines), ["dbtcloud"], Sources(()), {})
    (session,) = report.sessions
    assert session.verify_key and session.key_comment == "bastion verify (temporary key)"


def test_a_boot_ends_the_pid_namespace_in_journalds_fields() -> None:
    """With journald's fields the boots come from `journalctl --list-boots`: an entry belongs
    to the last boot begun at or before it, and session A's child after a boot put between
    its lines (at its first forward) is another process."""
    report, record = recorded_report("13")
    a = record["session_a"]["port"]
    entries = list(read_field_entries(field_lines("13")))
    child = next(i for i, e in enumerate(entries) if e.message.startswith("User child")
                 and i > next(j for j, e in enumerate(entries) if f"port {a} ssh2" in e.message))  # fmt: skip
    pid = int(entries[child].message.rsplit(" ", 1)[1])
    boot = next(e.time for e in entries[child:] if e.pid == pid and e.message.startswith("debug1: "))
    assert entries[child].time < boot
    split = list(read_field_entries(field_lines("13"), [entries[0].time.replace(microsecond=0), boot]))
    assert {e.boot for e in split if e.time < boot} == {1} and {e.boot for e in split if e.time >= boot} == {2}
    answer = parse_answer((RECORDED / "debian13.answer.txt").read_text())
    assert answer.fields and len(answer.boots) == 1
    answer.boots.append(boot)
    rebooted = report_of(answer, record)
    assert by_port(report)[a].forwards and not by_port(rebooted)[a].forwards
    # A ended when the host rebooted (journald says when the boot began); the sessions of
    # the last boot are as they were
    assert (by_port(rebooted)[a].end, by_port(rebooted)[a].ended) == (boot, "host rebooted")
    later = [s for s in rebooted.sessions if s.start >= boot]
    assert later and all(s == by_port(report)[s.port] for s in later)


def test_a_session_open_across_a_reboot_ended_with_it_and_one_after_it_is_open() -> None:
    """No line of sshd says that a session ended when its host went down: the first boot
    journald lists after its login does, in journald's fields and in the short format
    alike (whose marker has no time, and whose next line may come days later). Syslog files
    say nothing of boots: the session stays open."""
    t = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    before = _login(t, 500, 508, "52.45.144.63", 1001)  # never ends: the host reboots
    after = _login(t + timedelta(days=2), 500, 508, "52.45.144.63", 1002)  # still open
    boot, now = t + timedelta(hours=1), t + timedelta(days=2, hours=1)
    boots = [t - timedelta(days=1), boot]
    marker = "-- Boot 0123456789abcdef0123456789abcdef --"  # what the host's filter lets by
    short = SshdLog(now=now, lines=[*before, marker, *after], forwards_logged=True, boots=boots)
    fields = [f"{e.micros}\t{e.pid}\t{e.message}" for e in read_entries([*before, *after], now=now)]
    joined = SshdLog(now=now, lines=fields, forwards_logged=True, fields=True, boots=boots)
    for log in (short, joined):
        report = build_report(log, ["dbtcloud"], Sources(()), {})
        assert {s.port: (s.end, s.ended) for s in report.sessions} == {
            1001: (boot, "host rebooted"), 1002: (None, "")}  # fmt: skip
        assert report.to_dict()["sessions"][0]["end"] == "2026-11-30T09:00:00Z"
        assert report.sessions[0].seconds == 3600
    # a reboot since the last login, and no line since: the session is over all the same
    rebooted = SshdLog(now=now, lines=before, boots=[*boots[:1], boot])
    assert [s.ended for s in build_report(rebooted, ["dbtcloud"], Sources(()), {}).sessions] == ["host rebooted"]
    files = SshdLog(now=now, lines=before, source="files")
    assert [s.end for s in build_report(files, ["dbtcloud"], Sources(()), {}).sessions] == [None]


def _journal(at: datetime, pid: int, message: str) -> str:
    return f"{at.isoformat(timespec='microseconds')} bastion sshd-session[{pid}]: {message}"


def _login(at: datetime, parent: int, child: int, address: str, port: int) -> list[str]:
    key = "SHA256:" + "k" * 43
    return [
        _journal(at, parent, f"Connection from {address} port {port} on 10.231.1.2 port 22"),
        _journal(at, parent, f"Accepted publickey for dbtcloud from {address} port {port} ssh2: ED25519 {key}"),
        _journal(at, parent, f"User child is on pid {child}"),
    ]  # fmt: skip


FORWARD = "debug1: server_request_direct_tcpip: originator 127.0.0.1 port 40000, target 10.231.1.6 port 5432"


def test_a_reused_pid_is_another_session_and_an_old_line_of_it_claims_nothing() -> None:
    """pid 200 served a session that ended hours ago; now it is another session's child,
    whose first forward comes before its parent's `User child is on pid 200`: the forward is
    the new session's. A line of pid 200 from long before a session's child claims it is no
    one's."""
    t = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    second = timedelta(seconds=1)
    lines = [
        _journal(t - timedelta(minutes=10), 300, FORWARD),  # of a process read only in part
        *_login(t, 100, 200, "192.0.2.10", 1001),
        _journal(t + second, 200, FORWARD),
        _journal(t + 2 * second, 200, "Disconnected from user dbtcloud 192.0.2.10 port 1001"),
        _journal(t + timedelta(hours=3), 400, "Connection from 192.0.2.11 port 1002 on 10.231.1.2 port 22"),
        _journal(t + timedelta(hours=3), 200, FORWARD),  # the new child, ahead of its parent
        *_login(t + timedelta(hours=3, seconds=1), 400, 200, "192.0.2.11", 1002)[1:],
        _journal(t + timedelta(hours=3, seconds=2), 200, FORWARD),
        *_login(t + timedelta(hours=4), 500, 300, "192.0.2.12", 1003),
    ]  # fmt: skip
    log = SshdLog(now=t + timedelta(hours=5), lines=lines, forwards_logged=True)
    report = build_report(log, ["dbtcloud"], Sources(()), {})
    forwards = {s.port: sum(s.forwards.values()) for s in report.sessions}
    assert forwards == {1001: 1, 1002: 2, 1003: 0}


def test_a_december_line_read_in_january_is_last_year() -> None:
    now = datetime(2027, 1, 2, 10, 0, tzinfo=UTC)
    line = "Dec 31 23:59:58 bastion sshd[42]: Connection from 192.0.2.7 port 5000 on 10.0.0.2 port 22"
    (entry,) = read_entries([line], now=now)
    assert entry.time == datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)


def test_29_february_read_in_a_common_year_is_the_last_leap_years() -> None:
    """A traditional syslog line has no year: 29 February read in 2029 is 2028's, and a date
    no year has is no line of sshd's (the lines around it are read)."""
    now = datetime(2029, 3, 1, 10, 0, tzinfo=UTC)
    lines = [
        "Feb 29 23:59:58 bastion sshd[42]: Connection from 192.0.2.7 port 5000 on 10.0.0.2 port 22",
        "Apr 31 00:00:01 bastion sshd[42]: Connection from 192.0.2.7 port 5001 on 10.0.0.2 port 22",
        "Feb 28 00:00:02 bastion sshd[43]: Connection from 192.0.2.7 port 5002 on 10.0.0.2 port 22",
    ]
    entries = list(read_entries(lines, now=now))
    assert [(e.time, e.pid) for e in entries] == [
        (datetime(2028, 2, 29, 23, 59, 58, tzinfo=UTC), 42),
        (datetime(2029, 2, 28, 0, 0, 2, tzinfo=UTC), 43),
    ]


def test_sources_name_dbt_clouds_regions(make_config: MakeConfig) -> None:
    settings = make_config(admin_cidrs=["198.51.100.7/32"], extra_cidrs=["203.0.113.0/28"])
    named = Sources.of(settings)
    assert named.name("52.45.144.63") == "dbt Cloud us"
    assert named.name("203.0.113.5") == "extra_cidrs"
    assert named.name("198.51.100.7") == "admin_cidrs"
    assert named.name("192.0.2.1") == "unknown"


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400), ("30d", 2592000), ("90m", 5400),
                                               ("2w", 1209600), ("45s", 45), ("3650d", 315360000)])  # fmt: skip
def test_since_reads_a_number_and_a_unit(text: str, seconds: int) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "0h", "1y", "24h\n", "1h; id", " 24h",
                                  "3651d", "999999w"])
def test_since_refuses_anything_else_naming_the_option(text: str) -> None:
    with pytest.raises(InputError, match="--since"):
        parse_since(text)


def test_tunnel_must_name_a_tunnel_user(make_config: MakeConfig) -> None:
    settings = make_config()
    assert tunnel_users(settings, None) == tunnel_users(settings, "dbtcloud") == ["dbtcloud"]
    with pytest.raises(InputError, match="--tunnel"):
        tunnel_users(settings, "admin")


# --- journald keeps the log ------------------------------------------------------------------

DEBIAN_DEFAULT = """@@journald
@@on-disk
# /etc/systemd/journald.conf
[Journal]
#Storage=auto
#MaxRetentionSec=0
"""


@pytest.mark.parametrize(("text", "seconds"), [("", 0), ("0", 0), ("30day", 2592000),
                                               ("1month", 2629800), ("2w 3d", 1468800),
                                               ("7d", 604800), ("3600", 3600)])  # fmt: skip
def test_journald_time_spans(text: str, seconds: float) -> None:
    assert timespan_seconds(text) == seconds


def test_debians_default_journald_is_made_persistent() -> None:
    journald = parse_journald(DEBIAN_DEFAULT)
    assert journald == Journald(running=True, on_disk_folder=True, storage="auto")
    change = retention_change(journald)
    assert change is not None and "Storage=auto" in change.detail and "persistent" in change.detail
    script = "\n".join(change.lines)
    assert "Storage=persistent" in _dropin(script) and "MaxRetentionSec" not in _dropin(script)
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0


def test_a_short_retention_is_raised_to_30_days_and_the_last_value_wins() -> None:
    text = DEBIAN_DEFAULT + "# /etc/systemd/journald.conf.d/10-a.conf\n[Journal]\nStorage=persistent\nMaxRetentionSec=1week\n"
    change = retention_change(parse_journald(text))
    assert change is not None and "MaxRetentionSec=1week -> 30day" in change.detail
    assert "MaxRetentionSec=30day" in _dropin("\n".join(change.lines))


@pytest.mark.parametrize("extra", ["Storage=persistent\n", "Storage=persistent\nMaxRetentionSec=90d\n"])
def test_a_journal_kept_on_disk_long_enough_is_no_change(extra: str) -> None:
    assert retention_change(parse_journald(DEBIAN_DEFAULT + extra)) is None


LATER = "# /etc/systemd/journald.conf.d/zzz-local.conf\n[Journal]\nMaxRetentionSec=7day\n"
OURS = "# /etc/systemd/journald.conf.d/zz-dbt-bastion.conf\n[Journal]\nStorage=persistent\nMaxRetentionSec=30day\n"


def test_a_dropin_read_after_bastions_is_named_not_fought() -> None:
    """A drop-in whose name sorts after zz-dbt-bastion.conf wins over it: a change for what it
    sets would be planned again at every run, so none is, and `overridden` names it; what the
    tool's drop-in can still change (Storage here) is planned."""
    kept = parse_journald(DEBIAN_DEFAULT + LATER)
    assert (kept.retention_file, kept.storage_file) == ("/etc/systemd/journald.conf.d/zzz-local.conf", "")
    change = retention_change(kept)
    assert change is not None and "Storage=auto" in change.detail and "MaxRetentionSec" not in change.detail
    assert overridden(kept) == "MaxRetentionSec=7day in /etc/systemd/journald.conf.d/zzz-local.conf"
    settled = parse_journald(DEBIAN_DEFAULT + OURS + LATER)  # once the tool's drop-in is in
    assert retention_change(settled) is None and overridden(settled) == overridden(kept)
    # a journal kept off the disk by a later drop-in: nothing of the tool's would take
    volatile = DEBIAN_DEFAULT.replace("#MaxRetentionSec=0", "MaxRetentionSec=7day") + (
        "# /etc/systemd/journald.conf.d/zzz-local.conf\n[Journal]\nStorage=volatile\n")
    assert retention_change(parse_journald(volatile)) is None
    assert overridden(parse_journald(volatile)) == "Storage=volatile in /etc/systemd/journald.conf.d/zzz-local.conf"
    # a drop-in read before the tool's (or journald.conf) is the tool's to outvote
    for before in ("# /etc/systemd/journald.conf.d/10-a.conf\n", "# /etc/systemd/journald.conf\n"):
        text = DEBIAN_DEFAULT + before + "[Journal]\nStorage=persistent\nMaxRetentionSec=7day\n"
        assert overridden(parse_journald(text)) is None
        assert retention_change(parse_journald(text)) is not None


def test_without_journald_nothing_is_planned_here() -> None:
    assert parse_journald("") == Journald()
    assert retention_change(Journald()) is None


def _dropin(script: str) -> str:
    line = next(line for line in script.splitlines() if line.startswith("put "))
    return base64.b64decode(line.split()[-1]).decode()
