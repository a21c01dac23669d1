"""Update workflows: playbooks (data) run over SSH as a crash-safe per-host state machine.

playbook.py (schema) · loader.py (YAML → playbook, ``--var``) · template.py (quoting, redaction) ·
executor.py (the seam to a host) · ssh.py + remote_shell.py (SSHExecutor, pinned host keys) ·
hostkeys.py (trust) · steps.py (one step against an executor) · state.py (run states) · models.py
(tables) · runs.py (store access: runs, leases, quarantine) · engine.py (the state machine,
reconcile) · outcomes.py (incidents) · health.py (agent reports for wait_healthy) · windows.py
(update windows) · cli.py, windows_cli.py (``update``, ``runs``, ``windows``, ``hosts ...``).
"""
