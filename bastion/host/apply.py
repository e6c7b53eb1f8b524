"""Make the planned changes: one batched root script under a host lock, then prove admin login.

Files are written atomically (temp file + rename). A new sshd_config is checked with
`sshd -t -f` and `sshd -T -f` before it replaces the live one; before sshd reloads, a
detached timer on the host is armed that restores the previous files and reloads again.
Only a fresh admin login (a new connection, new authentication) disarms it, so even a
connection that dies mid-run cannot lock the admin out.
"""

from __future__ import annotations

import shlex
from typing import NoReturn

from bastion.config.settings import Settings
from bastion.errors import HostError, SshError
from bastion.host.connection import HostConnection, HostUnreachable, connect
from bastion.host.facts import ROLLBACK_TOKEN, STATE_DIR, HostFacts
from bastion.host.plan import HostPlan

ROLLBACK_SECONDS = 45
RELOAD_GRACE_SECONDS = 10
CANDIDATE = "/etc/ssh/sshd_config.bastion-new"
PREVIOUS = "/etc/ssh/sshd_config.bastion-prev"
ROLLBACK_SCRIPT = f"{STATE_DIR}/rollback.sh"
TIMER_PID = f"{STATE_DIR}/rollback.pid"
APPLIED = "bastion-applied"
STALE = "the host changed since the facts were read"


class HostChanged(HostError):
    """Another run changed the host between our facts and our lock: plan again."""


_FUNCTIONS = f"""\
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
STATE={STATE_DIR}
fail() {{ echo "bastion-failed: $*" >&2; exit 1; }}
put() {{
  rm -f "$1".bastion-tmp.*  # left by a run cut mid-write (the lock is ours, no run is writing)
  tmp="$1.bastion-tmp.$$"
  printf %s "$5" | base64 -d > "$tmp" || fail "cannot write $1"
  chmod "$2" "$tmp" && chown "$3:$4" "$tmp" && mv -f "$tmp" "$1" || {{ rm -f "$tmp"; fail "cannot install $1"; }}
}}
newkey() {{
  rm -f "$3.bastion-new" "$3.bastion-new.pub"
  ssh-keygen -q -t "$1" -b "$2" -N '' -C '' -f "$3.bastion-new" </dev/null >/dev/null \\
    || {{ restore_files; fail "ssh-keygen could not make a $1 host key"; }}
  mv -f "$3.bastion-new.pub" "$3.pub" && mv -f "$3.bastion-new" "$3" \\
    || {{ restore_files; fail "cannot install the new $1 host key"; }}
}}
filter_moduli() {{
  cp -p /etc/ssh/moduli "$STATE/moduli.prev" 2>/dev/null
  awk -v min="$1" '$1 !~ /^[0-9]+$/ || NF != 7 || $5 >= min' /etc/ssh/moduli > /etc/ssh/moduli.bastion-tmp \\
    && chmod 644 /etc/ssh/moduli.bastion-tmp && mv -f /etc/ssh/moduli.bastion-tmp /etc/ssh/moduli \\
    || fail "cannot filter /etc/ssh/moduli"
}}
restore_files() {{
  [ -f {PREVIOUS} ] && cp -p {PREVIOUS} /etc/ssh/sshd_config
  for f in "$STATE"/prev/ssh_host_*; do [ -e "$f" ] && cp -p "$f" /etc/ssh/; done
  return 0
}}
"""


def _candidate_function(facts: HostFacts, plan: HostPlan, settings: Settings, addr: str) -> str:
    """Write the candidate, then refuse it unless sshd accepts it and reports what we want."""
    assert plan.desired is not None
    checks = []
    for keyword, value in plan.desired.effective.items():
        checks += [
            f'grep -qixF {shlex.quote(line)} "$STATE/global.t"' for line in _lines(keyword, value)
        ]
    for keyword, value in plan.desired.effective_tunnel.items():
        checks += [
            f'grep -qixF {shlex.quote(line)} "$STATE/tunnel.t"' for line in _lines(keyword, value)
        ]
    match = shlex.quote(f"user={settings.tunnel.user},host={addr},addr={addr}")
    check_lines = " &&\n    ".join(checks) or "true"
    return f"""\
candidate() {{
  printf %s "$1" | base64 -d > {CANDIDATE} && chmod 600 {CANDIDATE} || fail "cannot write {CANDIDATE}"
  out=$("$SSHD" -t -f {CANDIDATE} 2>&1) || {{ rm -f {CANDIDATE}; restore_files; \\
    fail "sshd -t refused the rendered sshd_config, nothing was installed: $out"; }}
  "$SSHD" -T -f {CANDIDATE} > "$STATE/global.t" 2>&1 &&
  "$SSHD" -T -f {CANDIDATE} -C {match} > "$STATE/tunnel.t" 2>&1 &&
    {check_lines} || {{ rm -f {CANDIDATE}; restore_files; \\
    fail "sshd -T does not report the rendered values for the candidate; nothing was installed"; }}
}}
"""


def _lines(keyword: str, value: str) -> list[str]:
    """The `sshd -T` lines for one wanted value: one per port, since each has its own line."""
    if keyword == "port":
        return [f"port {port}" for port in value.split()]
    return [f"{keyword} {value}"]


def _rollback_script(service: str, verb: str) -> str:
    return f"""#!/bin/sh
# Written by dbt-bastion: restores the previous sshd files unless a fresh admin login disarmed it.
[ -e {ROLLBACK_TOKEN} ] || exit 0
[ -f {PREVIOUS} ] && cp -p {PREVIOUS} /etc/ssh/sshd_config
for f in {STATE_DIR}/prev/ssh_host_*; do [ -e "$f" ] && cp -p "$f" /etc/ssh/; done
systemctl {verb} {service}
rm -f {ROLLBACK_TOKEN}
echo "$(date -u +%FT%TZ) rolled back: $(cat {STATE_DIR}/rollback.reason 2>/dev/null)" >> {STATE_DIR}/rollback.log
"""


def apply_script(
    settings: Settings,
    facts: HostFacts,
    plan: HostPlan,
    addr: str,
    *,
    rollback_seconds: int = ROLLBACK_SECONDS,
) -> str:
    """The one root script that makes every planned change, in order."""
    import base64

    verb = "restart" if plan.restart else "reload"
    parts = [_FUNCTIONS, _candidate_function(facts, plan, settings, addr)]
    parts.append(
        f"mkdir -p {STATE_DIR} && chmod 755 {STATE_DIR} || fail 'cannot create {STATE_DIR}'\n"
        f"exec 9>{STATE_DIR}/lock\n"
        "flock -w 60 9 || fail 'another bastion run holds the lock on this host'\n"
        # a run before us is in its admin login check: its login or its timer clears the token
        f"i=0; while [ -e {ROLLBACK_TOKEN} ] && [ $i -lt {5 * (int(rollback_seconds) + RELOAD_GRACE_SECONDS)} ];"
        " do sleep 0.2; i=$((i+1)); done\n"
        f"[ -e {ROLLBACK_TOKEN} ] && fail 'a previous run is still waiting for its admin login "
        "check (or its rollback)'\n"
    )
    # The host must still be what the facts said: another run may have changed it meanwhile.
    user = settings.tunnel.user  # validated: a plain POSIX user name
    user_known = "y" if facts.user(user) else ""
    parts.append(
        f'[ "$(sha256sum /etc/ssh/sshd_config | cut -d" " -f1)" = {shlex.quote(facts.sshd_config_sha256)} ]'
        f" || fail '{STALE} (sshd_config); run again'\n"
        f"home=$(getent passwd {user} | cut -d: -f6)\n"
        f'[ "${{home:+y}}" = "{user_known}" ] || fail "{STALE} (user {user}); run again"\n'
        'ak=""; [ -n "$home" ] && [ -f "$home/.ssh/authorized_keys" ]'
        ' && ak=$(sha256sum < "$home/.ssh/authorized_keys" | cut -d" " -f1)\n'
        f'[ "$ak" = {shlex.quote(facts.authorized_keys_sha256)} ]'
        f" || fail '{STALE} (authorized_keys of {user}); run again'\n"
    )
    if plan.needs_reload:
        rollback = base64.b64encode(_rollback_script(facts.service, verb).encode()).decode()
        parts.append(
            f'rm -rf "$STATE/prev" && mkdir -p "$STATE/prev" && cp -p /etc/ssh/sshd_config {PREVIOUS}'
            " || fail 'cannot keep a copy of sshd_config'\n"
        )
        for key in plan.host_keys:
            parts.append(
                f'for f in {key} {key}.pub; do [ -e "$f" ] && cp -p "$f" "$STATE/prev/"; done\n'
            )
        parts.append(f"put {ROLLBACK_SCRIPT} 700 root root {rollback}\n")
    parts.extend(f"{line}\n" for line in plan.lines)
    if plan.needs_reload:
        parts.append(
            f'echo "{verb} after: {"; ".join(c.resource for c in plan.plan.changes)}"'
            f" > $STATE/rollback.reason\n"
            f"date -u +%FT%TZ > {ROLLBACK_TOKEN}\n"
            # fd 9 (the lock) is closed for the timer: it must not hold the lock while it waits
            f"setsid sh -c 'echo $$ > {TIMER_PID}; i=0; while [ $i -lt {int(rollback_seconds)} ]"
            f" && [ -e {ROLLBACK_TOKEN} ]; do sleep 1; i=$((i+1)); done; exec sh {ROLLBACK_SCRIPT}'"
            " 9>&- </dev/null >/dev/null 2>&1 &\n"
        )
        if plan.sshd_config:
            parts.append(
                f"mv -f {CANDIDATE} /etc/ssh/sshd_config || fail 'cannot install sshd_config'\n"
            )
        parts.append(
            f"out=$(systemctl {verb} {facts.service} 2>&1) || "
            f'{{ sh {ROLLBACK_SCRIPT}; fail "{verb} of {facts.service} failed, restored: $out"; }}\n'
        )
    parts.append(f"echo {APPLIED}\n")
    return "".join(parts)


DISARM = (
    f"rm -f {ROLLBACK_TOKEN} && pid=$(cat {TIMER_PID} 2>/dev/null); "
    f'[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; rm -f {TIMER_PID}; echo disarmed'
)


def run_apply(conn: HostConnection, script: str) -> None:
    result = conn.sudo_script(script, timeout=900)
    if result.exited != 0 or APPLIED not in result.stdout:
        lines = [ln for ln in (result.stderr or "").splitlines() if "bastion-failed:" in ln]
        reason = lines[-1].split("bastion-failed:", 1)[1].strip() if lines else (
            (result.stderr or result.stdout).strip()[-400:]
        )  # fmt: skip
        error = HostChanged if reason.startswith(STALE) else HostError
        raise error(f"changing the host failed: {reason}")


def confirm_admin_login(
    settings: Settings,
    conn: HostConnection,
    *,
    rollback_seconds: int = ROLLBACK_SECONDS,
) -> None:
    """A fresh admin login disarms the timer; if it fails, restore now (or the timer will)."""
    try:
        fresh = _fresh_login(settings, conn)
    except SshError as exc:
        _roll_back_now(
            settings,
            conn,
            rollback_seconds,
            f"a fresh admin login failed after the reload ({exc.message})",
        )
    try:
        result = fresh.sudo_script(DISARM)
    finally:
        fresh.close()
    if "disarmed" not in result.stdout:
        _roll_back_now(settings, conn, rollback_seconds, "the fresh admin login could not run sudo")


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
                conn.address, port, settings.bastion.admin_user, settings.bastion.admin_key, pins
            )
        except HostUnreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _roll_back_now(
    settings: Settings, conn: HostConnection, rollback_seconds: int, reason: str
) -> NoReturn:
    try:
        result = conn.sudo_script(
            f"sh {ROLLBACK_SCRIPT}; [ ! -e {ROLLBACK_TOKEN} ] && echo restored"
        )
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
