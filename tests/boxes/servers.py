"""Configuration and start of a box's OpenSSH, nginx, PHP-FPM and cron (one function per server).

Each server runs in the foreground with its pid file, log and sockets under the box's root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import procs
from .errors import BoxCommandError, BoxStartError
from .layout import BoxLayout

REPO = Path(__file__).resolve().parents[2]
UNITS_DOUBLE = Path(__file__).resolve().parent / "doubles/units.py"
PHP_FPM = os.environ.get("BOXKEEPER_PHP_FPM", "php-fpm8.2")


BITRIXENV_502 = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>502 Bad Gateway</title></head>
<body><h1>502 Bad Gateway</h1>
<p>The server is temporarily unable to service your request. Please try again later.</p>
<hr><p>Bitrix Environment (test box)</p></body></html>
"""


def box_path_env(layout: BoxLayout) -> str:
    return f"{layout.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# -- OpenSSH ---------------------------------------------------------------------------------------
def make_keys(layout: BoxLayout) -> tuple[str, str]:
    """Host key and the controller's client key; returns (known_hosts line, SHA256 fingerprint)."""
    ssh = layout.etc / "ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    layout.client.mkdir(parents=True, exist_ok=True)
    for key, comment in (
        (ssh / "ssh_host_ed25519_key", f"host@{layout.name}"),
        (layout.client / "id_ed25519", f"controller@{layout.name}"),
    ):
        res = procs.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
        if res.returncode != 0:
            raise BoxCommandError(["ssh-keygen"], res.returncode, res.stderr, box=layout.name)
    (ssh / "authorized_keys").write_text((layout.client / "id_ed25519.pub").read_text())
    host_pub = (ssh / "ssh_host_ed25519_key.pub").read_text().split()
    line = f"[{layout.address}]:{layout.ssh_port} {host_pub[0]} {host_pub[1]}"
    (layout.client / "known_hosts").write_text(line + "\n")
    res = procs.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(ssh / "ssh_host_ed25519_key.pub")])
    return line, res.stdout.split()[1]


def write_sshd_config(layout: BoxLayout, port: int | None = None) -> None:
    """`port`: listen elsewhere than the box's ssh_port (the slow-network fault's proxy takes it)."""
    ssh = layout.etc / "ssh"
    env = {
        "PATH": box_path_env(layout),
        "BOX_ROOT": str(layout.root),
        "BOX_NAME": layout.name,
        "MYSQL_HOME": str(layout.etc / "mysql"),
        "LANG": "C.UTF-8",
    }
    (ssh / "sshd_config").write_text(f"""# sshd of test box {layout.name}
ListenAddress {layout.address}:{port or layout.ssh_port}
HostKey {ssh / "ssh_host_ed25519_key"}
PidFile {layout.run / "sshd-own.pid"}
AuthorizedKeysFile {ssh / "authorized_keys"}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PrintMotd no
MaxStartups 50:30:100
MaxSessions 30
ClientAliveInterval 15
SetEnv {" ".join(f"{k}={v}" for k, v in env.items())}
Subsystem sftp internal-sftp
""")
    # What bitrix-env keeps in /root/.my.cnf: the shell's `mysql` and `mysqldump` reach the portal DB.
    (layout.etc / "mysql").mkdir(parents=True, exist_ok=True)
    (layout.etc / "mysql/my.cnf").write_text(
        f"[client]\nsocket = {layout.mysql_socket}\nuser = root\n\n"
        f"[mysqldump]\nsocket = {layout.mysql_socket}\nuser = root\n"
    )


def start_sshd(layout: BoxLayout) -> None:
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    procs.spawn(
        [
            "/usr/sbin/sshd",
            "-D",
            "-f",
            str(layout.etc / "ssh/sshd_config"),
            "-E",
            str(layout.log_file("sshd")),
        ],
        log=layout.logs / "sshd.out",
        pid_file=layout.pid_file("sshd"),
    )


# -- nginx + PHP-FPM -------------------------------------------------------------------------------
def write_web_configs(layout: BoxLayout, http_port: int | None = None) -> None:
    temp = layout.run / "nginx"
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / sub).mkdir(parents=True, exist_ok=True)
    (layout.etc / "nginx/bx/conf").mkdir(parents=True, exist_ok=True)
    (layout.etc / "nginx/nginx.conf").write_text(f"""# nginx of test box {layout.name}
daemon off;
user root;
worker_processes 1;
pid {layout.run / "nginx-own.pid"};
error_log {layout.logs / "nginx-error.log"};
events {{ worker_connections 128; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {layout.logs / "nginx-access.log"};
    client_body_temp_path {temp / "client_body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    server {{
        listen {layout.address}:{http_port or layout.http_port};
        server_name _;
        root {layout.docroot};
        index index.php index.html;
        # like bitrix-env's /etc/nginx/bx/conf: snippets packages ship (os-packages-update's tests)
        include {layout.etc / "nginx/bx/conf"}/*.conf;
        location ~ ^/(bitrix/modules|bitrix/php_interface|bitrix/backup|bitrix/updates|upload/support) {{
            deny all;
        }}
        location ~ /\\.settings\\.php$ {{ deny all; }}
        location ~ \\.php$ {{
            try_files $uri =404;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param DOCUMENT_ROOT $document_root;
            fastcgi_pass unix:{layout.run / "php-fpm.sock"};
        }}
        location / {{ try_files $uri $uri/ /index.php?$args; }}
        # like bitrix-env: its own page when the backend is down, and nginx's status for monitoring
        error_page 502 503 504 /bitrixenv_error/502.html;
        location ^~ /bitrixenv_error/ {{ internal; root {layout.root / "var/www"}; }}
        location = /nginx_status {{ stub_status; allow 127.0.0.0/8; deny all; }}
    }}
    # a second site (bitrix-env's ext_www/<site>), served once a test adds it (Box.add_site)
    server {{
        listen {layout.address}:{layout.ext_http_port};
        server_name _;
        root {layout.ext_site_docroot};
        index index.php index.html;
        location ~ ^/(bitrix/modules|bitrix/php_interface|bitrix/backup|bitrix/updates|upload/support) {{
            deny all;
        }}
        location ~ /\\.settings\\.php$ {{ deny all; }}
        location ~ \\.php$ {{
            try_files $uri =404;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param DOCUMENT_ROOT $document_root;
            fastcgi_pass unix:{layout.run / "php-fpm.sock"};
        }}
        location / {{ try_files $uri $uri/ /index.php?$args; }}
        error_page 502 503 504 /bitrixenv_error/502.html;
        location ^~ /bitrixenv_error/ {{ internal; root {layout.root / "var/www"}; }}
    }}
}}
""")
    error_pages = layout.root / "var/www/bitrixenv_error"
    error_pages.mkdir(parents=True, exist_ok=True)
    (error_pages / "502.html").write_text(BITRIXENV_502)
    (layout.etc / "php").mkdir(parents=True, exist_ok=True)
    php_errors = layout.logs / "php-errors.log"  # written by the workers, which run as bitrix
    php_errors.touch()
    shutil.chown(php_errors, "bitrix", "bitrix")
    (
        layout.etc / "php/php-fpm.conf"
    ).write_text(f"""; PHP-FPM of test box {layout.name} (the Apache+mod_php of a BitrixVM)
[global]
pid = {layout.run / "php-fpm-own.pid"}
error_log = {layout.logs / "php-fpm.log"}
daemonize = no

[portal]
user = bitrix
group = bitrix
listen = {layout.run / "php-fpm.sock"}
listen.mode = 0666
pm = static
pm.max_children = 3
catch_workers_output = yes
php_admin_flag[display_errors] = off
php_admin_flag[log_errors] = on
php_admin_value[error_log] = {layout.logs / "php-errors.log"}
php_admin_value[opcache.revalidate_freq] = 0
""")


def start_php_fpm(layout: BoxLayout) -> None:
    procs.spawn(
        [PHP_FPM, "-F", "-y", str(layout.etc / "php/php-fpm.conf")],
        log=layout.logs / "php-fpm.out",
        pid_file=layout.pid_file("php-fpm"),
    )


def start_nginx(layout: BoxLayout) -> None:
    procs.spawn(
        ["nginx", "-c", str(layout.etc / "nginx/nginx.conf"), "-e", str(layout.logs / "nginx-error.log")],
        log=layout.logs / "nginx.out",
        pid_file=layout.pid_file("nginx"),
    )


def php_fpm_ready(layout: BoxLayout) -> bool:
    return (layout.run / "php-fpm.sock").exists() and procs.is_running(
        procs.read_pid(layout.pid_file("php-fpm"))
    )


# -- cron ------------------------------------------------------------------------------------------
def write_service_scripts(layout: BoxLayout) -> None:
    """boxctl (the box's init system) and a systemctl with the BitrixVM unit names."""
    layout.bin.mkdir(parents=True, exist_ok=True)
    boxctl = layout.bin / "boxctl"
    boxctl.write_text(f"""#!/bin/sh
# Service control of test box {layout.name}: boxctl start|stop|restart|status SERVICE
# SERVICE: sshd nginx php-fpm mariadb cron pg
cd {REPO} && exec {sys.executable} -m tests.boxes service --state-dir {layout.state_dir} \\
    --box {layout.name} "$@"
""")
    systemctl = layout.bin / "systemctl"
    systemctl.write_text("""#!/bin/sh
# systemctl of a test box: BitrixVM unit names mapped onto the box's servers (see boxctl);
# the 1C units srv1cv8-<version>@default and ras-<version> go to the units TEST DOUBLE (--with-1c).
action=$1; unit=${2%.service}
case $unit in
  httpd|apache2|php-fpm|php8.2-fpm) svc=php-fpm ;;
  nginx) svc=nginx ;;
  mysqld|mysql|mariadb) svc=mariadb ;;
  sshd|ssh) svc=sshd ;;
  crond|cron) svc=cron ;;
  postgresql*|postgrespro*) svc=pg ;;
  srv1cv8-*|ras-*) ONEC_DOUBLE_STATE=@ONEC_STATE@ exec /usr/bin/python3 @UNITS@ "$action" "$unit" ;;
  *) echo "Unit $2.service could not be found." >&2; exit 5 ;;
esac
case $action in
  start|stop|restart) exec boxctl "$action" "$svc" ;;
  reload) exec boxctl restart "$svc" ;;
  is-active|status) exec boxctl status "$svc" ;;
  *) echo "Unknown command verb $action." >&2; exit 1 ;;
esac
""".replace("@ONEC_STATE@", str(layout.onec_state)).replace("@UNITS@", str(UNITS_DOUBLE)))
    for script in (boxctl, systemctl):
        script.chmod(0o755)


def write_cron(layout: BoxLayout) -> None:
    layout.cron_file.parent.mkdir(parents=True, exist_ok=True)
    layout.cron_file.write_text(
        "# Bitrix agents and mail of the default site (as /etc/cron.d/bx_<db> on a BitrixVM)\n"
        f"* * * * * bitrix php -f {layout.docroot}/bitrix/modules/main/tools/cron_events.php\n"
    )


def start_cron(layout: BoxLayout, interval: float) -> None:
    procs.spawn(
        [
            sys.executable,
            str(Path(__file__).with_name("cron_runner.py")),
            "--root",
            str(layout.root),
            "--interval",
            str(interval),
            "--path",
            box_path_env(layout),
        ],
        log=layout.log_file("cron"),
        pid_file=layout.pid_file("cron"),
    )


def ensure_bitrix_user() -> None:
    """BitrixVM's system user `bitrix` (owns the docroot, runs PHP); created once if missing."""
    if subprocess.run(["id", "-u", "bitrix"], capture_output=True, check=False).returncode == 0:
        return
    res = procs.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--home-dir",
            "/home/bitrix",
            "--no-create-home",
            "--shell",
            "/bin/bash",
            "bitrix",
        ]
    )
    if res.returncode not in (0, 9):  # 9: created meanwhile by a concurrent session
        raise BoxCommandError(["useradd"], res.returncode, res.stderr)


def wait_port(layout: BoxLayout, server: str, port: int, timeout: float = 30) -> None:
    if not procs.wait_until(lambda: procs.port_open(layout.address, port), timeout):
        raise BoxStartError(
            server,
            procs.tail(layout.log_file(server)) + procs.tail(layout.logs / f"{server}.out"),
            box=layout.name,
        )
