"""``boxkeeper hosts add|list|revoke|trust|unquarantine``: the inventory, agent tokens, SSH host keys
and quarantine.

::

    boxkeeper hosts add NAME --client C [--json]     prints the new agent token once
    boxkeeper hosts list [--json]                    (read-only)
    boxkeeper hosts revoke NAME
    boxkeeper hosts trust HOST [--yes] [--replace]   shows the SSH host key, pins it after you confirm
    boxkeeper hosts unquarantine HOST                after a failed rollback, once a human has looked
    boxkeeper hosts enroll HOST... | --client C [--upgrade] [--bundle F] [--controller-url URL]
                                                     install the agent over SSH (controller/enrolment.py)
    boxkeeper hosts remove HOST [--uninstall]        revoke its token; --uninstall: remove the agent too
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from controller import __version__, enrolment, inventory
from controller.cli.common import Cli, age, load_config, open_db, read_db, table
from controller.config import ControllerConfig
from controller.errors import ConfigError
from controller.runtime import executor_for, host_config, known_hosts_file
from controller.store.db import Database
from controller.workflows import hostkeys
from controller.workflows import runs as store
from controller.workflows.errors import ExecutorError
from controller.workflows.ssh import SSHExecutor, SSHTarget, parse_jump


def register(cli: Cli) -> None:
    _, verbs = cli.group("hosts", "hosts, agent tokens, SSH host keys, quarantine")
    p = verbs.command("add", "add a host (or re-issue a revoked one's token)", cmd_add)
    p.add_argument("name")
    p.add_argument("--client", required=True)
    p.add_argument("--json", action="store_true")
    p = verbs.command("list", "list hosts", cmd_list)
    p.add_argument("--json", action="store_true")
    p = verbs.command("revoke", "revoke a host's agent token", cmd_revoke)
    p.add_argument("name")
    p = verbs.command("trust", "pin a host's SSH key (shows the fingerprint)", cmd_trust)
    p.add_argument("host")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--replace", action="store_true", help="replace a different pinned key (key rotation)")
    p.add_argument("--known-hosts", default=None)
    p = verbs.command("unquarantine", "allow automation on a quarantined host again", cmd_unquarantine)
    p.add_argument("host")
    p = verbs.command("enroll", "install the agent on hosts over SSH, issue their tokens, see them report",
                      cmd_enroll)
    p.add_argument("hosts", nargs="*", metavar="HOST")
    p.add_argument("--client", help="every host of this client")
    p.add_argument("--upgrade", action="store_true",
                   help="move an installed agent to the bundle's version (rolled back if it does not report)")
    p.add_argument("--bundle", default=None,
                   help="the agent bundle (default: <state_dir>/bundles/boxkeeper-agent-VERSION-linux-x86_64"
                        ".tar.gz, built with `python -m agent.bundle` when missing)")
    p.add_argument("--controller-url", default=None,
                   help="the URL the agents push to (default: http://LISTEN of the config)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for a host's report (default 60)")
    p.add_argument("--known-hosts", default=None)
    p = verbs.command("remove", "revoke a host's agent token; --uninstall also removes the agent", cmd_remove)
    p.add_argument("host")
    p.add_argument("--uninstall", action="store_true", help="stop and remove the agent on the host over SSH")
    p.add_argument("--known-hosts", default=None)


def cmd_add(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    token = inventory.add_host(db, args.name, args.client, cfg=cfg)
    if args.json:
        print(json.dumps({"host": args.name, "client": args.client, "token": token}))
    else:
        print(f"host {args.name} (client {args.client}) added. Agent token (shown once, store it in the "
              f"agent's token_file, mode 0600):\n{token}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    rows = inventory.list_hosts(db)
    if args.json:
        print(json.dumps([
            {"host": r.name, "client": r.client, "token": r.has_token,
             "last_report_at": r.last_report_at, "last_seq": r.last_seq} for r in rows
        ], indent=2))
        return 0
    now = time.time()
    lines = [["HOST", "CLIENT", "TOKEN", "LAST REPORT"]]
    lines += [[r.name, r.client, "active" if r.has_token else "none", age(r.last_report_at, now)]
              for r in rows]
    print(table(lines))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    _cfg, db = open_db(args)
    count = inventory.revoke_host(db, args.name)
    print(f"host {args.name}: {count} token(s) revoked" if count else f"host {args.name}: no active token")
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    host = host_config(cfg, args.host)
    if host.ssh is None:
        raise ConfigError(cfg.source, f"clients[].hosts[name={host.name}].ssh.address", "an SSH address")
    address, port = host.ssh.address
    known = known_hosts_file(cfg, args.known_hosts)
    try:
        if host.ssh.jump:
            user, jump_host, jump_port = parse_jump(host.ssh.jump, host.ssh.user or "root")
            jump = SSHExecutor(SSHTarget(f"{host.name} (jump)", jump_host, jump_port, user, host.ssh.key_file,
                                         None, known))
            try:
                channel = jump.open_tunnel(address, port)
                key = hostkeys.fetch_host_key(address, port, sock=channel)
            finally:
                jump.close()
        else:
            key = hostkeys.fetch_host_key(address, port)
    except ExecutorError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    shown = hostkeys.fingerprint(key)
    pinned = hostkeys.pinned_keys(known, address, port)
    print(f"{host.name} ({address}:{port}) presents {key.get_name()} {shown}")
    if any(k.asbytes() == key.asbytes() for k in pinned):
        print(f"already trusted in {known}")
        return 0
    if pinned:
        print(f"WARNING: a DIFFERENT key is pinned for this host: {hostkeys.fingerprint(pinned[0])}. "
              "Unless the host was reinstalled or its key rotated, this may be a man in the middle.")
        if not args.replace:
            print("refused: pass --replace to replace the pinned key", file=sys.stderr)
            return 1
    if not args.yes:
        answer = input("Trust this key? Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` "
                       "run on the host [yes/no]: ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not trusted")
            return 1
    hostkeys.pin(known, address, port, key)
    print(f"trusted: {shown} pinned in {known}")
    return 0


def cmd_unquarantine(args: argparse.Namespace) -> int:
    _cfg, db = open_db(args)
    with db.session() as s:
        cleared = store.unquarantine(s, args.host)
    print(f"{args.host}: quarantine cleared" if cleared else f"{args.host}: was not quarantined")
    return 0


def _controller_url(cfg: ControllerConfig, given: str | None) -> str:
    if given:
        return given.rstrip("/")
    address, port = cfg.listen
    if address in ("0.0.0.0", "::", ""):  # noqa: S104 (read, not bound)
        raise ConfigError(cfg.source, "listen", "an address the hosts can reach, or --controller-url URL")
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


def _enrolment(cfg: ControllerConfig, db: Database, name: str, bundle: enrolment.Bundle, url: str,
               args: argparse.Namespace, lock: threading.Lock) -> enrolment.Enrolment:
    found = cfg.host(name)
    host = host_config(cfg, name)
    assert found is not None

    def show(step: enrolment.StepDone) -> None:
        with lock:
            print(step.line(name), flush=True)

    executor = executor_for(host, known_hosts_file(cfg, args.known_hosts))
    return enrolment.Enrolment(cfg, db, host, found[0].name, executor, bundle, url,
                               report_timeout=getattr(args, "timeout", 60.0), on_step=show)


def cmd_enroll(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    names = list(args.hosts)
    if args.client:
        client = cfg.client(args.client)
        if client is None:
            raise ConfigError(cfg.source, f"clients[name={args.client}]",
                              "the client in the controller config")
        names += [h.name for h in client.hosts if h.name not in names]
    if not names:
        print("boxkeeper: hosts enroll: name hosts, or --client NAME", file=sys.stderr)
        return 2
    for name in names:
        host_config(cfg, name)  # every host described, with an SSH address, before anything starts
    url = _controller_url(cfg, args.controller_url)
    try:
        if args.bundle:
            path = Path(args.bundle)
            if not path.is_file():
                raise enrolment.EnrolmentError("controller", "bundle", f"{path}: no such file")
            bundle = enrolment.Bundle(path, enrolment.bundle_version(path))
        else:
            bundle = enrolment.bundle_file(__version__, Path(cfg.state_dir) / "bundles")
    except enrolment.EnrolmentError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    lock = threading.Lock()
    failures: dict[str, str] = {}

    def one(name: str) -> None:
        e = _enrolment(cfg, db, name, bundle, url, args, lock)
        try:
            enrolment.enrol(e, upgrade=args.upgrade)
        except enrolment.EnrolmentError as exc:
            failures[name] = str(exc)
        except Exception as exc:  # one host's surprise must not hide the others' outcome
            failures[name] = f"{name}: {type(exc).__name__}: {exc}"
        finally:
            close = getattr(e.executor, "close", None)
            if close is not None:
                close()

    threads = [threading.Thread(target=one, args=(n,), name=f"enrol-{n}") for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in names:
        if name in failures:
            print(f"boxkeeper: {failures[name]}", file=sys.stderr)
    ok = len(names) - len(failures)
    print(f"enrolled {ok} of {len(names)} host(s) with agent {bundle.version}"
          + (f"; failed: {', '.join(n for n in names if n in failures)}" if failures else ""))
    return 1 if failures else 0


def cmd_remove(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    if not args.uninstall:
        count = inventory.revoke_host(db, args.host)
        print(f"host {args.host}: {count} token(s) revoked; its record and history stay (remove it from the "
              "config to stop watching it; --uninstall also removes the agent from the host)")
        return 0
    lock = threading.Lock()
    bundle = enrolment.Bundle(Path("-"), __version__)  # not used to uninstall
    e = _enrolment(cfg, db, args.host, bundle, "", args, lock)
    try:
        enrolment.uninstall(e)
    except enrolment.EnrolmentError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    finally:
        close = getattr(e.executor, "close", None)
        if close is not None:
            close()
    return 0
