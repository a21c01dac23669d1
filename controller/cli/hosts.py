"""``boxkeeper hosts add|list|revoke|trust|unquarantine``: the inventory, agent tokens, SSH host keys
and quarantine.

::

    boxkeeper hosts add NAME --client C [--json]     prints the new agent token once
    boxkeeper hosts list [--json]                    (read-only)
    boxkeeper hosts revoke NAME
    boxkeeper hosts trust HOST [--yes] [--replace]   shows the SSH host key, pins it after you confirm
    boxkeeper hosts unquarantine HOST                after a failed rollback, once a human has looked
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from controller import inventory
from controller.cli.common import Cli, age, load_config, open_db, read_db, table
from controller.errors import ConfigError
from controller.runtime import host_config, known_hosts_file
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
