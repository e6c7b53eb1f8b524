#!/bin/sh
# The lab host's `systemctl`: the lab host has no systemd, only sshd as a daemon. This keeps
# the tool's real code path for what it does with units and fails loudly on anything else.
#   reload|restart ssh|sshd   `sshd -t`, then SIGHUP to sshd (what ssh.service's ExecReload does)
#   is-active ssh|sshd        whether the pid in /run/sshd.pid runs
#   start|enable|is-enabled   of ssh and the automatic-update units: success
# Not covered (no systemd here): socket activation (Ubuntu's ssh.socket), timers that fire,
# unit files, journald.
set -eu
verb=""
units=""
quiet=no
for arg in "$@"; do
  case $arg in
    -q|--quiet) quiet=yes ;;
    -*) ;;  # --now, --no-pager, --no-block ...: meaningless here
    *) if [ -z "$verb" ]; then verb=$arg; else units="$units ${arg%.service}"; fi ;;
  esac
done

say() { [ "$quiet" = yes ] || printf '%s\n' "$1"; }
fail() { printf 'systemctl (bastion lab stand-in): %s\n' "$1" >&2; exit 1; }
sshd_running() {
  [ -s /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null
}

[ -n "$verb" ] || fail "no command given"
[ "$verb" = daemon-reload ] && exit 0
[ -n "$units" ] || fail "'$verb' needs a unit"
status=0
for unit in $units; do
  case $unit in
    ssh|sshd)
      case $verb in
        reload|restart|reload-or-restart|try-restart)
          /usr/sbin/sshd -t || fail "sshd -t failed: sshd_config not reloaded"
          sshd_running || fail "ssh.service is not running"
          kill -HUP "$(cat /run/sshd.pid)" ;;
        is-active)
          if sshd_running; then say active; else say inactive; status=3; fi ;;
        start) sshd_running || fail "ssh.service is not running and cannot be started here" ;;
        enable) ;;
        is-enabled) say enabled ;;
        *) fail "'$verb $unit' is not supported by the lab host" ;;
      esac ;;
    unattended-upgrades|apt-daily-upgrade.timer|apt-daily.timer|dnf-automatic.timer|dnf-automatic-install.timer)
      case $verb in
        enable|start|restart) ;;
        is-enabled) say enabled ;;
        is-active) say active ;;
        *) fail "'$verb $unit' is not supported by the lab host" ;;
      esac ;;
    *) fail "unit '$unit' is not known to the lab host (no systemd here)" ;;
  esac
done
exit $status
