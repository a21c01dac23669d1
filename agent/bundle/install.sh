#!/bin/sh
# boxkeeper agent @VERSION@: offline installer and service control (docs/agent.md, "Install").
#
#   sh install.sh [--root DIR] [--python PYTHON] [ACTION]
#
# ACTION (default install):
#   install    check Python (3.9-3.13) and the bundle's checksums, create the user boxkeeper (in the
#              group bitrix where it exists), /etc/boxkeeper, /var/lib/boxkeeper, a venv of the box's
#              own Python in /opt/boxkeeper/versions/VERSION from the bundle's wheels (no network:
#              pip --no-index), point /opt/boxkeeper/venv at it and keep the version before as
#              /opt/boxkeeper/previous, install the service (systemd unit, or an init script where
#              there is no systemd); restart the service if it was running. A second run with the
#              same version changes nothing.
#   rollback   point /opt/boxkeeper/venv back at /opt/boxkeeper/previous; restart if running
#   uninstall  stop the service, remove it, /opt/boxkeeper (but a package's bundle/), /var/lib/boxkeeper
#              and the token; keep /etc/boxkeeper/agent.yaml and the user
#   start | stop | restart | status   the service (systemctl, or the init script)
#   version    print the installed (current) version
#
# --root DIR: the box's files live under DIR on this machine and it is run from there (a test box,
# a chroot whose processes run here): every path below gets DIR in front; users and groups are this
# machine's. Exit codes: 0 done, 1 failed (the message says what), 2 usage.
set -eu

VERSION="@VERSION@"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=/
PYTHON=python3
[ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3  # the system's, not a pyenv/virtualenv shim on PATH
ACTION=install

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || { usage >&2; exit 2; }; ROOT=$2; shift 2 ;;
    --root=*) ROOT=${1#--root=}; shift ;;
    --python) [ $# -ge 2 ] || { usage >&2; exit 2; }; PYTHON=$2; shift 2 ;;
    --python=*) PYTHON=${1#--python=}; shift ;;
    -h|--help) usage; exit 0 ;;
    install|rollback|uninstall|start|stop|restart|status|version) ACTION=$1; shift ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

P=${ROOT%/}
OPT=$P/opt/boxkeeper
ETC=$P/etc/boxkeeper
VAR=$P/var/lib/boxkeeper
RUNDIR=$P/run
LOGDIR=$P/var/log
INITSCRIPT=$P/etc/init.d/boxkeeper-agent
UNIT=/etc/systemd/system/boxkeeper-agent.service
if [ -z "$P" ] && [ -d /run/systemd/system ]; then INIT=systemd; else INIT=sysv; fi

current_version() {
  [ -x "$OPT/venv/bin/boxkeeper-agent" ] || return 1
  "$OPT/venv/bin/boxkeeper-agent" --version 2>/dev/null | sed -n 's/^boxkeeper-agent //p'
}

service() {  # service ACTION: through systemd or the init script
  if [ "$INIT" = systemd ]; then
    case "$1" in
      status) systemctl is-active --quiet boxkeeper-agent ;;
      *) systemctl "$1" boxkeeper-agent ;;
    esac
  else
    [ -x "$INITSCRIPT" ] || return 3
    "$INITSCRIPT" "$1"
  fi
}

check_python() {
  command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON on this box: install Python 3.9 to 3.13 (RHEL 9: python3; Debian/Ubuntu: python3)"
  PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  tag=cp$(echo "$PYVER" | tr -d .)
  shipped=$(ls "$HERE/wheels" | sed -n 's/^msgspec-[^-]*-\(cp[0-9]*\)-.*/\1/p' | sort -u | tr '\n' ' ')
  case " $shipped " in
    *" $tag "*) ;;
    *) die "$PYTHON is Python $PYVER; this bundle has wheels for $shipped(Python 3.9 to 3.13; CentOS 7's 3.6 is not supported)" ;;
  esac
}

check_bundle() {
  [ -f "$HERE/SHA256SUMS" ] || die "$HERE is not a boxkeeper agent bundle (no SHA256SUMS)"
  (cd "$HERE" && sha256sum --quiet -c SHA256SUMS) >/dev/null 2>&1 \
    || die "the bundle in $HERE is damaged: run 'sha256sum -c SHA256SUMS' there to see which file"
}

ensure_user() {
  if ! getent group boxkeeper >/dev/null; then groupadd --system boxkeeper; echo "created group boxkeeper"; fi
  if ! getent passwd boxkeeper >/dev/null; then
    nologin=/usr/sbin/nologin; [ -x "$nologin" ] || nologin=/sbin/nologin
    useradd --system --gid boxkeeper --home-dir /var/lib/boxkeeper --no-create-home --shell "$nologin" boxkeeper
    echo "created user boxkeeper"
  fi
  # .settings.php of a Bitrix portal is readable by the group bitrix (bitrix-env)
  if getent group bitrix >/dev/null && ! id -nG boxkeeper | tr ' ' '\n' | grep -qx bitrix; then
    usermod -a -G bitrix boxkeeper
    echo "added boxkeeper to the group bitrix"
  fi
}

ensure_dirs() {
  install -d -m 0755 "$OPT" "$OPT/versions" "$LOGDIR" "$RUNDIR"
  install -d -m 0750 -o root -g boxkeeper "$ETC"
  install -d -m 0700 -o boxkeeper -g boxkeeper "$VAR" "$VAR/spool"
}

install_venv() {
  target=$OPT/versions/$VERSION
  if [ -x "$target/bin/boxkeeper-agent" ] \
      && [ "$("$target/bin/boxkeeper-agent" --version 2>/dev/null)" = "boxkeeper-agent $VERSION" ] \
      && [ "$("$target/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$PYVER" ]; then
    return 0
  fi
  rm -rf "$target"
  pipwhl=$(ls "$HERE"/wheels/pip-*.whl | head -n 1)
  # --without-pip: no ensurepip needed (Debian's python3 has none without python3-venv); pip runs
  # from its wheel, offline
  "$PYTHON" -m venv --without-pip "$target" || { rm -rf "$target"; die "$PYTHON -m venv $target failed"; }
  if ! "$target/bin/python" "$pipwhl/pip" install --no-index --find-links "$HERE/wheels" --no-cache-dir \
      --disable-pip-version-check --no-warn-script-location -q "boxkeeper-agent==$VERSION"; then
    rm -rf "$target"
    die "pip could not install boxkeeper-agent $VERSION from $HERE/wheels into $target"
  fi
  got=$("$target/bin/boxkeeper-agent" --version 2>&1) || { rm -rf "$target"; die "the new agent does not start: $got"; }
  INSTALLED=1
}

switch_to() {  # switch_to VERSION: /opt/boxkeeper/venv -> versions/VERSION, atomically
  ln -sfn "versions/$1" "$OPT/venv.new"
  mv -T "$OPT/venv.new" "$OPT/venv"
}

prune() {  # keep the current version and the previous one
  keep_cur=$(readlink "$OPT/venv" 2>/dev/null || true)
  keep_prev=$(readlink "$OPT/previous" 2>/dev/null || true)
  for dir in "$OPT"/versions/*; do
    [ -d "$dir" ] || continue
    rel=versions/$(basename "$dir")
    [ "$rel" = "$keep_cur" ] || [ "$rel" = "$keep_prev" ] || rm -rf "$dir"
  done
}

write_initscript() {
  install -d -m 0755 "$(dirname "$INITSCRIPT")"
  tmp=$INITSCRIPT.new
  sed -e "s|@OPT@|$OPT|g" -e "s|@ETC@|$ETC|g" -e "s|@RUNDIR@|$RUNDIR|g" -e "s|@LOGDIR@|$LOGDIR|g" \
    "$HERE/boxkeeper-agent.init" > "$tmp"
  chmod 0755 "$tmp"
  if [ -f "$INITSCRIPT" ] && cmp -s "$tmp" "$INITSCRIPT"; then rm -f "$tmp"; return 0; fi
  mv "$tmp" "$INITSCRIPT"
  echo "service: init script $INITSCRIPT"
  if [ -z "$P" ]; then
    if command -v chkconfig >/dev/null 2>&1; then chkconfig --add boxkeeper-agent
    elif command -v update-rc.d >/dev/null 2>&1; then update-rc.d boxkeeper-agent defaults >/dev/null
    fi
  fi
}

install_service() {
  install -m 0755 "$HERE/install.sh" "$OPT/install.sh.new" && mv "$OPT/install.sh.new" "$OPT/install.sh"
  install -m 0644 "$HERE/boxkeeper-agent.init" "$OPT/boxkeeper-agent.init"
  if [ "$INIT" = systemd ]; then
    if ! cmp -s "$HERE/boxkeeper-agent.service" "$UNIT" 2>/dev/null; then
      install -m 0644 "$HERE/boxkeeper-agent.service" "$UNIT"
      systemctl daemon-reload
      systemctl enable boxkeeper-agent >/dev/null 2>&1 || true
      echo "service: systemd unit $UNIT"
    fi
  else
    write_initscript
  fi
}

do_install() {
  [ "$(id -u)" = 0 ] || die "run as root (it creates the user boxkeeper and /opt/boxkeeper)"
  check_bundle
  check_python
  ensure_user
  ensure_dirs
  before=$(current_version || true)
  INSTALLED=0
  install_venv
  cur=$(readlink "$OPT/venv" 2>/dev/null || true)
  if [ "$cur" != "versions/$VERSION" ]; then
    if [ -n "$cur" ] && [ -d "$OPT/$cur" ]; then ln -sfn "$cur" "$OPT/previous"; fi
    switch_to "$VERSION"
    INSTALLED=1
  fi
  prune
  install_service
  if [ "$INSTALLED" = 1 ]; then
    echo "installed: boxkeeper-agent $VERSION in $OPT/versions/$VERSION (Python $PYVER: $(command -v "$PYTHON"))${before:+, was $before}"
    if service status >/dev/null 2>&1; then service restart; echo "service: restarted"; fi
  else
    echo "unchanged: boxkeeper-agent $VERSION already installed in $OPT/versions/$VERSION"
  fi
}

do_rollback() {
  prev=$(readlink "$OPT/previous" 2>/dev/null || true)
  cur=$(readlink "$OPT/venv" 2>/dev/null || true)
  [ -n "$prev" ] && [ -x "$OPT/$prev/bin/boxkeeper-agent" ] || die "no previous version in $OPT/previous to roll back to"
  ln -sfn "$cur" "$OPT/previous"
  switch_to "${prev#versions/}"
  echo "rolled back: boxkeeper-agent ${prev#versions/} (was ${cur#versions/})"
  if service status >/dev/null 2>&1; then service restart; echo "service: restarted"; fi
}

do_uninstall() {
  if service status >/dev/null 2>&1; then service stop; fi
  if [ "$INIT" = systemd ] && [ -f "$UNIT" ]; then
    systemctl disable boxkeeper-agent >/dev/null 2>&1 || true
    rm -f "$UNIT"; systemctl daemon-reload
  fi
  if [ -f "$INITSCRIPT" ]; then
    if [ -z "$P" ] && command -v chkconfig >/dev/null 2>&1; then chkconfig --del boxkeeper-agent || true
    elif [ -z "$P" ] && command -v update-rc.d >/dev/null 2>&1; then update-rc.d -f boxkeeper-agent remove >/dev/null || true
    fi
    rm -f "$INITSCRIPT"
  fi
  rm -rf "$OPT/versions" "$OPT/venv" "$OPT/previous" "$OPT/install.sh" "$OPT/boxkeeper-agent.init" "$VAR"
  rm -f "$ETC/agent.token" "$RUNDIR/boxkeeper-agent.pid"
  rmdir "$OPT" 2>/dev/null || true
  echo "uninstalled: boxkeeper-agent (kept: $ETC/agent.yaml if any, the user boxkeeper)"
}

case "$ACTION" in
  install) do_install ;;
  rollback) do_rollback ;;
  uninstall) do_uninstall ;;
  version) current_version || die "the agent is not installed in $OPT" ;;
  status) service status ;;
  start|stop|restart) service "$ACTION" ;;
esac
