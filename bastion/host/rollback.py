"""The rollback timer: armed before sshd reloads a new config, it restores the previous sshd
files unless a fresh admin login disarms it first.

- The token (`rollback.pending`) names the run that armed it, the boot it was armed in and
  when (seconds since boot); the timer holds `timer.lock` for as long as it lives, so a
  timer that is gone (a reboot, a stop/start, a killed process) is seen at once.
- Every change to the token is made under `rollback.lock`: the restore holds it from start
  to end (and ignores SIGTERM), so a disarm can neither cut it short nor report success on
  a host that was already rolled back.
- Restores are atomic (a copy beside each file, renamed over it once every copy is made)
  and checked with `sshd -t` before sshd picks them up; the unit drop-ins a run wrote
  (sshd's command line, the socket's ports) are put back, or removed, with them.

Where systemd is PID 1 the timer is a transient service (`systemd-run`): it belongs to
systemd, not to the admin's SSH session, so the session ending (logind may kill a
session's processes: KillUserProcesses=yes) does not end it; a disarm stops the unit.
Elsewhere it is a detached `setsid` process. The token's boot id and the timer lock make a
timer lost to a reboot harmless either way.
"""

from __future__ import annotations

import secrets

from bastion.host.paths import ROLLBACK_TOKEN, STATE_DIR

PREVIOUS = "/etc/ssh/sshd_config.bastion-prev"
ROLLBACK_SCRIPT = f"{STATE_DIR}/rollback.sh"
ROLLBACK_LOG = f"{STATE_DIR}/rollback.log"
ROLLBACK_LOCK = f"{STATE_DIR}/rollback.lock"
TIMER_LOCK = f"{STATE_DIR}/timer.lock"
TIMER_PID = f"{STATE_DIR}/rollback.pid"
TIMER_UNIT = f"{STATE_DIR}/rollback.unit"  # the transient unit's name, where systemd runs it
UNIT_PREFIX = "dbt-bastion-rollback-"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
ROLLED_BACK = "rolled back"


def new_token() -> str:
    """The id of one run's rollback token: its disarm must match it."""
    return secrets.token_hex(8)


def rollback_script(pickup: str) -> str:
    """rollback.sh [ID]: restore the previous sshd files if a rollback (ID's, or any) is
    pending; prints `restored` when the previous files are back and sshd picked them up
    (`pickup`: the shell line the run used, a daemon-reload first where units changed)."""
    return f"""#!/bin/sh
# Written by dbt-bastion: restores the previous sshd files unless a fresh admin login disarmed it.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
want=${{1:-}}
exec 7>{ROLLBACK_LOCK}
flock -w 120 7 || exit 1
if [ ! -e {ROLLBACK_TOKEN} ] || {{ [ -n "$want" ] && ! grep -qxF "id $want" {ROLLBACK_TOKEN}; }}; then
  # nothing pending for this run: already restored (say so), or disarmed
  ! grep -qF "{ROLLED_BACK} (run $want)" {ROLLBACK_LOG} 2>/dev/null || echo restored
  exit 0
fi
trap '' HUP INT TERM  # from here on the restore runs to its end
id=$(sed -n 's/^id //p' {ROLLBACK_TOKEN})
staged="" tried="" ok=y
stage() {{ tried="$tried $2"; cp -p "$1" "$2.bastion-rb" && staged="$staged $2"; }}
[ ! -f {PREVIOUS} ] || stage {PREVIOUS} /etc/ssh/sshd_config || ok=""
for f in {STATE_DIR}/prev/*; do [ ! -f "$f" ] || stage "$f" "/etc/ssh/${{f##*/}}" || ok=""; done
gone=""  # unit drop-ins this run wrote where there was none: removed
for p in {STATE_DIR}/prev/units/*.path; do
  [ -f "$p" ] || continue
  t=$(cat "$p")
  if [ -f "${{p%.path}}.file" ]; then stage "${{p%.path}}.file" "$t" || ok=""; else gone="$gone $t"; fi
done
if [ -n "$ok" ]; then for t in $staged; do mv -f "$t.bastion-rb" "$t" || ok=""; done; fi
if [ -n "$ok" ]; then for t in $gone; do rm -f "$t" || ok=""; done; fi
for t in $tried; do rm -f "$t.bastion-rb"; done
if [ -z "$ok" ]; then
  result="rollback failed: the previous files could not be written under /etc/ssh (is the disk full?); sshd was not reloaded"
elif ! out=$("$SSHD" -t 2>&1); then
  result="rollback failed: sshd -t refuses the restored files, sshd was not reloaded: $out"
elif ! out=$({pickup}); then
  result="{ROLLED_BACK}, but sshd did not pick the files up ($(printf %s "$out" | tr '\\n' ' '))"
else
  result="{ROLLED_BACK}"
fi
rm -f {ROLLBACK_TOKEN} {TIMER_PID} {TIMER_UNIT}
echo "$(date -u +%FT%TZ) $result (run $id): $(cat {STATE_DIR}/rollback.reason 2>/dev/null)" >> {ROLLBACK_LOG}
[ "$result" != "{ROLLED_BACK}" ] || echo restored
"""


# Ends the timer (only ever while its restore has not begun: the caller holds rollback.lock
# and took the token away): the transient unit stopped, or the setsid process killed.
_STOP_TIMER = f"""\
  unit=$(cat {TIMER_UNIT} 2>/dev/null)
  [ -z "$unit" ] || systemctl stop "$unit" >/dev/null 2>&1
  pid=$(cat {TIMER_PID} 2>/dev/null)
  [ -z "$pid" ] || ! tr '\\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q dbt-bastion \\
    || kill -TERM "$pid" 2>/dev/null
  rm -f {TIMER_PID} {TIMER_UNIT}
"""


def arm_function(seconds: int) -> str:
    """arm ID: write the token, then start the timer, which holds timer.lock while it lives.

    Where systemd is PID 1 the timer is a transient service, which takes the lock itself (a
    unit inherits no open file); arm waits until it holds it, so a timer that did not start
    stops the run before anything reloads. Elsewhere the lock's open file is handed to a
    `setsid` process and the script closes its own copy."""
    wait = (
        f"i=0; while [ $i -lt {int(seconds)} ] &&"
        f' grep -qxF "id $1" {ROLLBACK_TOKEN} 2>/dev/null; do sleep 1 6>&-; i=$((i+1)); done;'
        f' exec sh {ROLLBACK_SCRIPT} "$1"'
    )
    in_unit = f"exec 6>{TIMER_LOCK}; flock -w 10 6 || exit 1; {wait}"
    detached = f"echo $$ > {TIMER_PID}; {wait}"
    return f"""\
stop_timer() {{
{_STOP_TIMER}}}
disarm_own() {{
  exec 7>{ROLLBACK_LOCK} && flock -w 120 7 || return 1
  ! grep -qxF "id $1" {ROLLBACK_TOKEN} 2>/dev/null || rm -f {ROLLBACK_TOKEN}
  stop_timer
  exec 7>&-
}}
arm() {{
  exec 6>{TIMER_LOCK}
  flock -w 5 6 || fail "the rollback timer of an earlier run still runs"
  printf 'id %s\\nboot %s\\nuptime %s\\nat %s\\n' "$1" "$(cat {BOOT_ID} 2>/dev/null)" \\
    "$(cut -d' ' -f1 /proc/uptime)" "$(date -u +%FT%TZ)" > {ROLLBACK_TOKEN}.new \\
    && mv -f {ROLLBACK_TOKEN}.new {ROLLBACK_TOKEN} || fail "cannot write {ROLLBACK_TOKEN}"
  journal "disarm_own $1"
  if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
    unit={UNIT_PREFIX}$(printf %s "$1" | tr -c 'A-Za-z0-9_-' _).service
    echo "$unit" > {TIMER_UNIT} || fail "cannot write {TIMER_UNIT}"
    exec 6>&-
    out=$(systemd-run --quiet --collect --unit="$unit" \\
      --description="dbt-bastion: restores the previous sshd files unless a fresh admin login disarms it" \\
      sh -c '{in_unit}' dbt-bastion-timer "$1" 2>&1) \\
      || fail "the rollback timer could not be started (systemd-run): $out"
    i=0
    while flock -n {TIMER_LOCK} true 2>/dev/null; do
      [ $i -lt 200 ] || fail "the rollback timer $unit did not start"
      sleep 0.05; i=$((i+1))
    done
  else
    setsid sh -c '{detached}' dbt-bastion-timer "$1" 9>&- 7>&- 4>&- 3>&- </dev/null >/dev/null 2>&1 &
    exec 6>&-
  fi
}}
"""


def pending_function(wait_seconds: int) -> str:
    """settle_pending: a rollback left pending by an earlier run. Its timer alive: wait for
    it (its admin login or its restore ends it). Its timer gone (another boot, a dead
    process): judge the running config by this run's own login, which the running sshd
    accepted if it began after the token was written: keep it then, else restore."""
    tries = 5 * int(wait_seconds)
    return f"""\
session_start() {{
  p=$$
  while [ "$p" -gt 1 ] 2>/dev/null; do
    stat=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || break
    case $(cat "/proc/$p/comm" 2>/dev/null) in
      sshd*) printf '%s\\n' "$stat" | awk -v hz="$(getconf CLK_TCK)" '{{ printf "%.2f", $20 / hz }}'; return ;;
    esac
    p=$(printf '%s\\n' "$stat" | cut -d' ' -f2)
  done
  echo 0
}}
settle_left() {{
  left=$(sed -n 's/^id //p' {ROLLBACK_TOKEN} 2>/dev/null)
  armed=$(sed -n 's/^uptime //p' {ROLLBACK_TOKEN} 2>/dev/null)
  if [ "$1" = "another boot" ] || [ -z "$armed" ] || [ ! -f {ROLLBACK_SCRIPT} ] \\
    || awk -v s="$(session_start)" -v a="$armed" 'BEGIN {{ exit !(s > a) }}'; then
    exec 7>{ROLLBACK_LOCK} && flock -w 120 7 || fail "cannot take {ROLLBACK_LOCK}"
    mv -f {ROLLBACK_TOKEN} "$RUN/left-token" 2>/dev/null
    exec 7>&-
    echo "$(date -u +%FT%TZ) pending rollback cleared (run $left, $1): the running sshd_config \\
accepted this run's admin login" >> {ROLLBACK_LOG}
    note "a rollback left pending by an earlier run was cleared ($1): the running sshd_config \\
accepted this run's admin login, so it stays"
  else
    sh {ROLLBACK_SCRIPT} >/dev/null 2>&1
    [ ! -e {ROLLBACK_TOKEN} ] || fail "a rollback left pending by an earlier run ($1) could not \\
be completed; see {ROLLBACK_LOG}"
    note "a rollback left pending by an earlier run was completed ($1): this run logged in \\
before that run's sshd_config was installed, so the previous one was restored"
  fi
}}
settle_pending() {{
  i=0
  while [ -e {ROLLBACK_TOKEN} ]; do
    boot=$(sed -n 's/^boot //p' {ROLLBACK_TOKEN} 2>/dev/null)
    if [ -n "$boot" ] && [ "$boot" != "$(cat {BOOT_ID} 2>/dev/null)" ]; then
      settle_left "another boot"; return
    elif flock -n {TIMER_LOCK} true 2>/dev/null; then
      settle_left "its timer is gone"; return
    fi
    [ $i -lt {tries} ] || fail 'a previous run is still waiting for its admin login check (or its rollback)'
    sleep 0.2; i=$((i+1))
  done
}}
"""


def disarm_script() -> str:
    """Run by the fresh admin login with the run's token id: succeeds only if the rollback
    had not fired (`disarmed`), else says it was rolled back (and the log line)."""
    return f"""\
exec 7>{ROLLBACK_LOCK}
flock -w 120 7 || {{ echo "busy"; exit 1; }}
if grep -qxF "id $1" {ROLLBACK_TOKEN} 2>/dev/null && mv -f {ROLLBACK_TOKEN} {ROLLBACK_TOKEN}.done; then
{_STOP_TIMER}  rm -f {ROLLBACK_TOKEN}.done
  echo disarmed
else
  echo "rolled-back: $(grep -F "(run $1)" {ROLLBACK_LOG} 2>/dev/null | tail -n 1)"
fi
"""
