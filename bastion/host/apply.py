"""Make the planned changes: one batched root script under a host lock, then prove admin login.

The script checks everything first and writes nothing until then: the host is still what
the facts said, nothing in the tunnel user's home is a symbolic link, and `sshd -t -f` /
`sshd -T -f` accept the candidate sshd_config. Then it makes the changes, each noting in an
undo journal how to put back what it replaced (bastion.host.shell); the first step that
fails stops the script and the journal restores the host. Before sshd reloads, a detached
timer on the host is armed that restores the previous sshd files and reloads again
(bastion.host.rollback); only a fresh admin login (a new connection, new authentication)
disarms it, so even a connection that dies mid-run cannot lock the admin out.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from typing import NoReturn

from bastion.config.settings import Settings
from bastion.errors import HostError, SshError
from bastion.host.connection import HostConnection, HostUnreachable, connect
from bastion.host.desired import tunnel_addresses
from bastion.host.facts import HostFacts
from bastion.host.paths import ROLLBACK_TOKEN, STATE_DIR
from bastion.host.plan import HostPlan
from bastion.host.rollback import (
    PREVIOUS,
    ROLLBACK_SCRIPT,
    TIMER_PID,
    arm_function,
    disarm_script,
    new_token,
    pending_function,
    rollback_script,
)
from bastion.host.shell import FUNCTIONS, tunnel_home_checks
from bastion.host.sshd_units import run_all

__all__ = [
    "APPLIED", "CANDIDATE", "PREVIOUS", "ROLLBACK_SCRIPT", "ROLLBACK_SECONDS", "STATE_DIR",
    "TIMER_PID", "HostChanged", "apply_script", "confirm_admin_login", "new_token", "run_apply",
]  # fmt: skip

ROLLBACK_SECONDS = 45
RELOAD_GRACE_SECONDS = 10
CANDIDATE = "/etc/ssh/sshd_config.bastion-new"
APPLIED = "bastion-applied"
NOTE = "bastion-note: "
STALE = "the host changed since the facts were read"


class HostChanged(HostError):
    """Another run changed the host between our facts and our lock: plan again."""


def _candidate_function(facts: HostFacts, plan: HostPlan, settings: Settings, addr: str) -> str:
    """Write the candidate, then refuse it unless sshd accepts it and reports what we want."""
    assert plan.desired is not None
    checks = []
    for keyword, value in plan.desired.effective.items():
        checks += [
            f'grep -qixF {shlex.quote(line)} "$RUN/global.t"' for line in _lines(keyword, value)
        ]
    effective_runs = []
    addresses = tunnel_addresses(settings)
    for index, (user, tunnel) in enumerate(plan.desired.tunnels.items()):
        for keyword, value in tunnel.effective.items():
            checks += [
                f'grep -qixF {shlex.quote(line)} "$RUN/tunnel{index}.t"'
                for line in _lines(keyword, value)
            ]
        where = addresses.get(user, addr)
        match = shlex.quote(f"user={user},host={where},addr={where}")
        effective_runs.append(
            f'"$SSHD" -T -f {CANDIDATE} $HOSTKEYS -C {match} > "$RUN/tunnel{index}.t" 2>&1 &&'
        )
    check_lines = " &&\n    ".join(checks) or "true"
    tunnel_runs = "\n  ".join(effective_runs)
    # $HOSTKEYS: host keys this run makes (not in place yet) are passed with -h
    return f"""\
candidate() {{
  journal "rm -f {CANDIDATE}"
  printf %s "$1" | base64 -d > {CANDIDATE} && chmod 600 {CANDIDATE} || fail "cannot write {CANDIDATE}"
  out=$("$SSHD" -t -f {CANDIDATE} $HOSTKEYS 2>&1) || \\
    fail "sshd -t refused the rendered sshd_config, nothing was installed: $out"
  "$SSHD" -T -f {CANDIDATE} $HOSTKEYS > "$RUN/global.t" 2>&1 &&
  {tunnel_runs}
    {check_lines} || \\
    fail "sshd -T does not report the rendered values for the candidate; nothing was installed"
}}
"""


def _lines(keyword: str, value: str) -> list[str]:
    """The `sshd -T` lines for one wanted value: one per port, since each has its own line."""
    if keyword == "port":
        return [f"port {port}" for port in value.split()]
    return [f"{keyword} {value}"]


def _facts_still_hold(settings: Settings, facts: HostFacts) -> str:
    """The host must still be what the facts said: another run may have changed it meanwhile."""
    script = (
        f'[ "$(sha256sum /etc/ssh/sshd_config | cut -d" " -f1)" = {shlex.quote(facts.sshd_config_sha256)} ]'
        f" || fail '{STALE} (sshd_config); run again'\n"
    )
    for user in settings.tunnels:  # validated: plain POSIX user names
        user_known = "y" if facts.user(user) else ""
        text = facts.keys_text(user)
        if user in facts.authorized_keys_of or text is None:
            sha = hashlib.sha256(text.encode()).hexdigest() if text is not None else ""
        else:  # read by a facts script of one tunnel user: its hash of the raw bytes
            sha = facts.authorized_keys_sha256
        script += (
            f"home=$(getent passwd {user} | cut -d: -f6)\n"
            f'[ "${{home:+y}}" = "{user_known}" ] || fail "{STALE} (user {user}); run again"\n'
            + tunnel_home_checks(user)
            + 'ak=""; [ -n "$home" ] && [ -f "$home/.ssh/authorized_keys" ]'
            ' && ak=$(sha256sum < "$home/.ssh/authorized_keys" | cut -d" " -f1)\n'
            f'[ "$ak" = {shlex.quote(sha)} ]'
            f" || fail '{STALE} (authorized_keys of {user}); run again'\n"
        )
    return script


def apply_script(
    settings: Settings,
    facts: HostFacts,
    plan: HostPlan,
    addr: str,
    *,
    rollback_seconds: int = ROLLBACK_SECONDS,
    token: str = "",
) -> str:
    """The one root script: lock, checks, then every planned change in order (undone if one
    fails), the rollback timer, sshd_config and the reload. `token` names this run's
    rollback (its disarm must match it)."""
    token = token or new_token()
    pickup, picked_up = run_all(plan.pickup), " && ".join(plan.pickup)
    parts = [
        FUNCTIONS,
        f"PICKUP={shlex.quote(pickup)}\n",
        _candidate_function(facts, plan, settings, addr),
        arm_function(rollback_seconds),
        pending_function(int(rollback_seconds) + RELOAD_GRACE_SECONDS),
        f"mkdir -p {STATE_DIR} && chmod 755 {STATE_DIR} || fail 'cannot create {STATE_DIR}'\n",
        f"exec 9>{STATE_DIR}/lock\n",
        "flock -w 60 9 || fail 'another bastion run holds the lock on this host'\n",
        'rm -rf "$RUN" && mkdir -m 700 "$RUN" "$RUN/files" || fail "cannot create $RUN"\n'
        'LOCKED=y; exec >"$RUN/log" 2>&1\n'
        "trap 'fail \"the script stopped unexpectedly\"' EXIT\n"
        "trap 'fail \"the script was stopped by a signal\"' HUP INT TERM\n",
        # a run before us may be in its admin login check, or may have left a rollback pending
        "settle_pending\n",
        _facts_still_hold(settings, facts),
    ]
    # Checks: nothing is written yet but files this script alone uses (its run folder, the
    # candidate, new host keys beside the old ones); each is in the undo journal.
    parts.extend(f"{line}\n" for line in plan.checks)
    parts.append("CHANGING=y\n")
    if plan.needs_reload:
        restore = rollback_script(run_all(plan.pickup, "6>&- 2>&1"))
        rollback = base64.b64encode(restore.encode()).decode()
        parts.append(
            f"keep {PREVIOUS}; cp -p /etc/ssh/sshd_config {PREVIOUS}.t && mv -f {PREVIOUS}.t"
            f" {PREVIOUS} && cmp -s /etc/ssh/sshd_config {PREVIOUS}"
            " || fail 'cannot keep a copy of sshd_config (is the disk full?)'\n"
            f'if [ -d "$STATE/prev" ]; then mv "$STATE/prev" "$RUN/prev" || fail "cannot move'
            f' $STATE/prev"; journal "mv $RUN/prev $STATE/prev"; fi\n'
            'journal "rm -rf $STATE/prev"; mkdir "$STATE/prev" || fail "cannot create $STATE/prev"\n'
            f"put {ROLLBACK_SCRIPT} 700 root root {rollback}\n"
            "GUARDED=y\n"
        )
    parts.extend(f"{line} || fail {shlex.quote(_step(line))}\n" for line in plan.lines)
    if plan.needs_reload:
        reason = f"{picked_up} after: {'; '.join(c.resource for c in plan.plan.changes)}"
        parts.append(
            f'keep "$STATE/rollback.reason"; echo {shlex.quote(reason)} > "$STATE/rollback.reason"'
            " || fail 'cannot write the rollback reason'\n"
            f"arm {shlex.quote(token)}\n"
        )
        if plan.sshd_config:
            parts.append(
                "keep /etc/ssh/sshd_config\n"
                f"mv -f {CANDIDATE} /etc/ssh/sshd_config || fail 'cannot install sshd_config'\n"
            )
        parts.append(f'RELOADED=y\nout=$({pickup}) || fail "{picked_up} failed: $out"\n')
        # what systemd runs now: no option on sshd's command line, the socket's ports
        parts.extend(f"{line}\n" for line in plan.after)
    parts.append(
        'trap - EXIT HUP INT TERM; : > "$RUN/undo"\n'
        'exec 1>&3 2>&4; cat "$RUN/notes" 2>/dev/null; rm -rf "$RUN"\n'
    )
    parts.append(f"echo {APPLIED}\n")
    return "".join(parts)


def _step(line: str) -> str:
    words = line.split()
    return f"the step '{' '.join(words[:2])}' failed"


def run_apply(conn: HostConnection, script: str) -> list[str]:
    """Run the apply script; returns the host's notes (e.g. a stale rollback it resolved)."""
    result = conn.sudo_script(script, timeout=900)
    if result.exited != 0 or APPLIED not in result.stdout:
        lines = [ln for ln in (result.stderr or "").splitlines() if "bastion-failed:" in ln]
        reason = lines[-1].split("bastion-failed:", 1)[1].strip() if lines else (
            (result.stderr or result.stdout).strip()[-400:]
        )  # fmt: skip
        error = HostChanged if reason.startswith(STALE) else HostError
        raise error(f"changing the host failed: {reason}")
    return [ln[len(NOTE) :] for ln in result.stdout.splitlines() if ln.startswith(NOTE)]


def confirm_admin_login(
    settings: Settings,
    conn: HostConnection,
    *,
    token: str,
    rollback_seconds: int = ROLLBACK_SECONDS,
) -> None:
    """A fresh admin login disarms the timer; if it fails, restore now (or the timer will).
    A timer that fired first has restored the previous files: that is a failed run."""
    try:
        fresh = _fresh_login(settings, conn)
    except SshError as exc:
        _roll_back_now(
            settings,
            conn,
            rollback_seconds,
            token,
            f"a fresh admin login failed after the reload ({exc.message})",
        )
    try:
        result = fresh.sudo_script(disarm_script(), token)
    finally:
        fresh.close()
    if "disarmed" in result.stdout:
        return
    if "rolled-back:" in result.stdout:
        logged = result.stdout.split("rolled-back:", 1)[1].strip()
        raise HostError(
            "the fresh admin login came after the host's rollback timer had fired: the host "
            f"was rolled back to its previous sshd_config ({logged or 'see ' + ROLLBACK_TOKEN})",
            hint="run `bastion configure` again (a slow or cut connection delayed the check)",
        )
    _roll_back_now(
        settings, conn, rollback_seconds, token, "the fresh admin login could not run sudo"
    )


def _fresh_login(settings: Settings, conn: HostConnection) -> HostConnection:
    """Log in again as the admin; sshd re-executes on reload, so its port may be closed for
    a moment: connection refused is retried for a few seconds, a refused key is not.
    It is on `ssh_port`: during a port change, the new port is the one to prove."""
    return _login_on(settings, conn, settings.bastion.ssh_port)


def _login_on(settings: Settings, conn: HostConnection, port: int) -> HostConnection:
    """An admin login on `port`; the host key must be the one `conn` saw (a new port of the
    same sshd has no known_hosts line yet, and learns this one)."""
    import dataclasses
    import time

    pins = dataclasses.replace(
        conn.pins, expected=(*conn.pins.expected, conn.host_key_fingerprint), accept_new=False
    )
    deadline = time.monotonic() + RELOAD_GRACE_SECONDS
    while True:
        try:
            return connect(
                conn.address,
                port,
                settings.bastion.admin_user,
                settings.bastion.admin_key,
                pins,
                dial=conn.dial,  # through an Instance Connect Endpoint: a new tunnel
            )
        except HostUnreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _roll_back_now(
    settings: Settings, conn: HostConnection, rollback_seconds: int, token: str, reason: str
) -> NoReturn:
    try:
        result = conn.sudo_script(f"sh {ROLLBACK_SCRIPT} {shlex.quote(token)}")
        restored = "restored" in result.stdout
    except (SshError, HostError):
        restored = False
    if restored:
        try:  # prove it, on the port of `conn`: the restored file listens there (a port move)
            if conn.port == settings.bastion.ssh_port:
                _fresh_login(settings, conn).close()
            else:
                _login_on(settings, conn, conn.port).close()
        except SshError:
            restored = False
    if restored:
        raise HostError(f"{reason}; the previous sshd_config was restored and sshd reloaded")
    raise HostError(
        f"{reason}; the timer on the host restores the previous sshd_config within "
        f"{rollback_seconds} s",
        hint="wait a minute, then run `bastion configure` again to see the host's state",
    )
