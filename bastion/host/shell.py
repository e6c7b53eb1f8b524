"""The shell functions of the apply script: each step that writes on the host first notes,
in an undo journal, how to put back what it replaces (a copy of the file) or remove what it
creates (a file, a folder, a user, a group). `fail` stops the script at the first failed step
and plays the journal backwards, so a failed run leaves the host as it was.

The script's own output goes to a log in the run's folder until it ends: a connection that
dies mid-run then cannot kill a step with SIGPIPE half-way (the script runs on, no TTY).
"""

from __future__ import annotations

from bastion.host.paths import STATE_DIR, VERIFY_KEYS_NAME

RUN_DIR = f"{STATE_DIR}/run"  # this run's undo journal, copies of what it replaces, its log

FUNCTIONS = f"""\
set -u
exec 3>&1 4>&2
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
umask 022
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
STATE={STATE_DIR}
RUN={RUN_DIR}
LOCKED="" CHANGING="" RELOADED="" GUARDED="" HOSTKEYS="" UNITS="" PICKUP="systemctl reload ssh" n=0
fail() {{
  trap - EXIT HUP INT TERM
  why=$(printf '%s' "$*" | tr '\\n' ' ')
  if [ -z "$LOCKED" ]; then :  # the run folder is another run's
  elif [ ! -s "$RUN/undo" ]; then rm -rf "$RUN"
  elif undo; then
    [ -z "$CHANGING" ] || why="$why; the host was restored as it was before this run"
    rm -rf "$RUN"
  else  # the copies stay in $RUN for a person to finish the job
    why="$why; restoring what this run had changed failed for: $(cat "$RUN/undo.failed")(see $RUN)"
  fi
  exec 1>&3 2>&4
  echo "bastion-failed: $why" >&2
  exit 1
}}
note() {{ printf 'bastion-note: %s\\n' "$*" >> "$RUN/notes"; }}
q() {{ printf "'%s'" "$(printf %s "$1" | sed "s/'/'\\\\\\\\''/g")"; }}
journal() {{ printf '%s\\n' "$1" >> "$RUN/undo" || fail "cannot write the undo journal in $RUN"; }}
undo() {{
  tac "$RUN/undo" > "$RUN/undo.todo" && : > "$RUN/undo" && : > "$RUN/undo.failed" || return 1
  while IFS= read -r step; do
    ( eval "$step" ) </dev/null || printf '%s; ' "$step" >> "$RUN/undo.failed"
  done < "$RUN/undo.todo"
  if [ -n "$RELOADED" ]; then  # PICKUP holds a daemon-reload where unit files changed
    "$SSHD" -t && eval "$PICKUP" >/dev/null 2>&1 || echo "$PICKUP; " >> "$RUN/undo.failed"
  elif [ -n "$UNITS" ]; then
    systemctl daemon-reload || echo "systemctl daemon-reload; " >> "$RUN/undo.failed"
  fi
  [ ! -s "$RUN/undo.failed" ]
}}
restore_file() {{
  cp -pP "$RUN/files/$2" "$1.bastion-undo" && mv -f "$1.bastion-undo" "$1" \\
    || {{ rm -f "$1.bastion-undo"; return 1; }}
}}
remove_dir() {{ rmdir "$1" 2>/dev/null || [ ! -e "$1" ]; }}
restore_dir() {{ chown -h "$3" "$1" && chmod "$2" "$1"; }}
del_group() {{ ! getent group "$1" >/dev/null || groupdel "$1"; }}
del_user() {{
  if [ -n "$3" ]; then  # userdel would take the user's group along: it was there before
    other=$(getent group nogroup || getent group nobody || getent group users) || return 1
    usermod -g "$(printf %s "$other" | cut -d: -f3)" "$1" || return 1
  fi
  if [ -n "$2" ]; then userdel -r "$1"; else userdel "$1"; fi
}}
keep() {{
  if [ -e "$1" ] || [ -L "$1" ]; then
    n=$((n+1))
    cp -pP "$1" "$RUN/files/$n" || fail "cannot keep a copy of $1 before changing it (is the disk full?)"
    journal "restore_file $(q "$1") $n"
  else
    journal "rm -f $(q "$1")"
  fi
}}
nofollow() {{
  for p in "$1" "${{1%/*}}"; do
    [ ! -L "$p" ] || fail "$p is a symbolic link; bastion does not write through links"
  done
}}
put() {{
  nofollow "$1"
  rm -f "$1".bastion-tmp.*  # left by a run cut mid-write (the lock is ours, no run is writing)
  keep "$1"
  tmp=$(mktemp "$1.bastion-tmp.XXXXXX") || fail "cannot write $1"
  printf %s "$5" | base64 -d > "$tmp" || {{ rm -f "$tmp"; fail "cannot write $1 (is the disk full?)"; }}
  chmod "$2" "$tmp" && chown "$3:$4" "$tmp" && mv -f "$tmp" "$1" || {{ rm -f "$tmp"; fail "cannot install $1"; }}
}}
ensure_dir() {{
  nofollow "$1"
  if [ -d "$1" ]; then journal "restore_dir $(q "$1") $(stat -c '%a %u:%g' "$1")"
  elif [ -e "$1" ]; then fail "$1 exists and is not a directory"
  else journal "remove_dir $(q "$1")"
  fi
  install -d -m "$2" -o "$3" -g "$3" "$1" && chown -h "$3:$3" "$1" && chmod "$2" "$1" \\
    || fail "cannot make $1 (mode $2, owner $3)"
}}
mkgroup() {{ groupadd "$1" || fail "groupadd $1 failed"; journal "del_group $(q "$1")"; }}
mkuser() {{
  base=$(useradd -D 2>/dev/null | sed -n 's/^HOME=//p')
  new_home=r; [ ! -e "${{base:-/home}}/$1" ] || new_home=""  # userdel -r only for a new home
  had_group=y; ! grep -qxF "del_group $(q "$1")" "$RUN/undo" || had_group=""
  useradd -m -g "$1" -s "$2" -c "$3" "$1"; made=$?
  ! getent passwd "$1" >/dev/null || journal "del_user $(q "$1") '$new_home' '$had_group'"
  [ "$made" = 0 ] || fail "useradd $1 failed"
}}
moduser() {{
  name=$1; shift
  old=$(getent passwd "$name" | cut -d: -f4,7)
  usermod "$@" "$name" || fail "usermod $name failed"
  journal "usermod -g $(q "${{old%%:*}}") -s $(q "${{old#*:}}") $(q "$name")"
}}
expire_user() {{  # PAM refuses an expired account, whatever key it offers
  usermod -e 1 "$1" || fail "usermod -e 1 $1 failed"; journal "usermod -e '' $(q "$1")"
}}
unexpire_user() {{ usermod -e '' "$1" || fail "usermod -e '' $1 failed"; journal "usermod -e 1 $(q "$1")"; }}
makekey() {{
  journal "rm -f $(q "$3.bastion-new") $(q "$3.bastion-new.pub")"
  rm -f "$3.bastion-new" "$3.bastion-new.pub"
  ssh-keygen -q -t "$1" -b "$2" -N '' -C '' -f "$3.bastion-new" </dev/null >/dev/null \\
    || fail "ssh-keygen could not make a $1 host key"
  HOSTKEYS="$HOSTKEYS -h $3.bastion-new"
}}
installkey() {{
  keep "$1.pub" && keep "$1"
  [ -z "$GUARDED" ] || for f in "$1" "$1.pub"; do [ ! -e "$f" ] || cp -p "$f" "$STATE/prev/"; done \\
    || fail "cannot keep a copy of $1 for the rollback timer"
  mv -f "$1.bastion-new.pub" "$1.pub" && mv -f "$1.bastion-new" "$1" \\
    || fail "cannot install the new host key $1"
}}
filter_moduli() {{
  keep /etc/ssh/moduli
  [ -z "$GUARDED" ] || cp -p /etc/ssh/moduli "$STATE/prev/moduli" \\
    || fail "cannot keep a copy of /etc/ssh/moduli for the rollback timer"
  awk -v min="$1" '$1 !~ /^[0-9]+$/ || NF != 7 || $5 >= min' /etc/ssh/moduli > /etc/ssh/moduli.bastion-tmp \\
    && chmod 644 /etc/ssh/moduli.bastion-tmp && mv -f /etc/ssh/moduli.bastion-tmp /etc/ssh/moduli \\
    || {{ rm -f /etc/ssh/moduli.bastion-tmp; fail "cannot filter /etc/ssh/moduli (is the disk full?)"; }}
}}
label_ssh_port() {{  # SELinux: sshd may bind tcp port $1 (-m where the policy gives it another type)
  out=$(semanage port -a -t ssh_port_t -p tcp "$1" 2>&1) \\
    || out=$(semanage port -m -t ssh_port_t -p tcp "$1" 2>&1) \\
    || fail "semanage could not label tcp port $1 ssh_port_t: $(said "$out")"
  journal "semanage port -d -p tcp $1 >/dev/null 2>&1"  # the local label goes, the policy's stays
}}
put_unit() {{  # a unit drop-in of the tool's own; the rollback timer restores what it replaced
  ensure_dir "${{1%/*}}" 755 root
  if [ -n "$GUARDED" ]; then  # prev/units/N.path names it, N.file is what it held (if it was)
    mkdir -p "$STATE/prev/units" && k=$(($(ls "$STATE/prev/units" | wc -l))) \\
      && {{ [ ! -e "$1" ] || cp -p "$1" "$STATE/prev/units/$k.file"; }} \\
      && printf '%s\\n' "$1" > "$STATE/prev/units/$k.path" \\
      || fail "cannot keep a copy of $1 for the rollback timer"
  fi
  UNITS=y
  put "$1" 644 root root "$2"
}}
enable_timer() {{  # unmasked and enabled (and started): systemd runs it from now on, and at boot
  if [ "$(systemctl is-enabled "$1" 2>/dev/null)" = masked ]; then
    journal "systemctl mask $(q "$1") >/dev/null 2>&1"
    systemctl unmask "$1" >/dev/null 2>&1 || fail "cannot unmask $1"
  fi
  journal "systemctl disable --now $(q "$1") >/dev/null 2>&1"
  answer=$(systemctl enable --now "$1" 2>&1) || fail "enabling $1 failed: $answer"
}}
said() {{
  s=$(printf '%s\\n' "$1" | grep -E '^(E|Err|Error)[: ]' | tail -n 3)
  [ -n "$s" ] || s=$(printf '%s\\n' "$1" | tail -n 2)
  printf '%s ' "$s" | tr '\\n' ' '
}}
apt_install() {{
  out=$(DEBIAN_FRONTEND=noninteractive apt-get update -q 2>&1) || fail "apt-get update failed, so \\
$1 cannot be installed: $(said "$out")- the host must reach its package mirrors (outbound HTTP/HTTPS: \\
a NAT gateway, an internet gateway or a proxy); fix that, or run sudo apt-get update && sudo apt-get \\
install $1 on the host, then run bastion again"
  out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" 2>&1) || fail "installing $1 \\
failed: $(said "$out")- run sudo apt-get update && sudo apt-get install $1 on the host to see why, \\
fix it, then run bastion again"
}}
dnf_install() {{
  out=$(dnf makecache -q 2>&1) || fail "dnf makecache failed, so $1 cannot be installed: \\
$(said "$out")- the host must reach its package repositories (outbound HTTPS); fix that, or run \\
sudo dnf install $1 on the host, then run bastion again"
  out=$(dnf install -y -q "$1" 2>&1) || fail "installing $1 failed: $(said "$out")- run sudo dnf \\
install $1 on the host to see why, fix it, then run bastion again"
}}
"""


def tunnel_home_checks(user: str) -> str:
    """Nothing in the tunnel user's home is read or written through a symbolic link."""
    paths = ' '.join(f'"$home{p}"' for p in ("", "/.ssh", "/.ssh/authorized_keys",
                                             f"/.ssh/{VERIFY_KEYS_NAME}"))  # fmt: skip
    return (
        f'[ -z "$home" ] || for p in {paths}; do\n'
        f'  [ ! -L "$p" ] || fail "$p is a symbolic link: bastion does not follow links in the '
        f'home of {user}"\n'
        "done\n"
    )
