"""Update workflows: playbooks (data) run over SSH as a crash-safe per-host state machine.

playbook.py (schema) · loader.py (YAML → playbook through controller.configkit, ``--var``) ·
template.py (``{{ }}`` rendering, quoting) · steps/ (one module per step kind: its options and how
it runs; ``steps/registry.py`` lists them) · executor.py (the seam to a host and the one
"timed out" rule) · executors.py (the executor kinds: ``ssh``) · ssh.py + remote_shell.py
(SSHExecutor, pinned host keys) · hostkeys.py (trust) · state.py (run states) · models.py
(tables) · runs.py (store access: runs, leases, quarantine) · engine.py (the state machine,
reconcile) · outcomes.py (incidents) · health.py (agent reports for wait_healthy) · windows.py
(update windows).

Imports the foundation (store, configkit, schedule, redact, errors) and ``controller.alerting``
(incidents of failed releases, owned silences); never the config, API or CLI: those live in
``controller/runtime.py`` (config → runs), ``controller/api/runs.py`` and ``controller/cli/``.
"""
