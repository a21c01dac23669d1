"""The catalogues (same keys, every label used exists), the language choice, the one permission
function, and the session table's migration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from controller.store.base import Base
from controller.store.db import MIGRATIONS_DIR, Database
from controller.ui import i18n
from controller.ui.access import ACTIONS, Identity, can, sees
from controller.ui.models import UiSession

TEMPLATES = Path(i18n.__file__).parent / "templates"


def test_both_catalogues_have_the_same_keys_and_no_empty_label() -> None:
    assert set(i18n.EN) == set(i18n.RU)
    for lang, labels in i18n.CATALOGUES.items():
        assert all(text.strip() for text in labels.values()), lang
        for key, text in labels.items():  # the same {placeholders} in both languages
            assert re.findall(r"{\w+}", text) == re.findall(r"{\w+}", i18n.EN[key]), (lang, key)


def test_every_fixed_label_of_the_templates_is_in_the_catalogue() -> None:
    used = set()
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(["']([a-z_]+\.[a-z_.]*[a-z_])["']""", text))
    assert used and used - set(i18n.EN) == set()
    # the labels picked by value: every host state, role, severity, incident status
    states = ("ok", "warning", "critical", "unknown", "agent_down", "unreachable", "maintenance")
    by_value = (("state.", states),
                ("role.", ("viewer", "operator", "admin")), ("sev.", ("critical", "warning", "info")),
                ("inc.st.", ("open", "acknowledged", "resolved")), ("metric.", ("load1", "memory", "disk")))
    for prefix, values in by_value:
        assert {prefix + v for v in values} <= set(i18n.EN)


@pytest.mark.parametrize(("header", "cookie", "expected"), [
    ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", None, "ru"),
    ("en-GB,en;q=0.9,ru;q=0.8", None, "en"),
    ("de-DE,de;q=0.9,ru;q=0.5", None, "ru"),
    ("fr", None, "en"),
    (None, None, "en"),
    ("ru;q=0, en;q=0.1", None, "en"),
    ("ru", "en", "en"),
    ("en", "ru", "ru"),
    ("en", "<script>", "en"),
])
def test_language_choice(header: str | None, cookie: str | None, expected: str) -> None:
    assert i18n.language(header, cookie) == expected


def test_roles_and_client_scope_decide_every_action() -> None:
    admin, operator = Identity("a", "admin"), Identity("o", "operator", frozenset({"acme"}))
    viewer = Identity("v", "viewer")
    for action in ACTIONS:
        assert can(admin, action, "acme") and can(admin, action, "globex")
        # windows and holds: admin, as in the API
        admin_only = ("window.add", "window.enable", "release.release", "release.hold")
        assert can(operator, action, "acme") == (action not in admin_only)
        assert not can(operator, action, "globex")
        assert can(viewer, action, "acme") == (action == "view")
    # a release hold is fleet-wide: an admin limited to some clients may not lift one, whatever is asked
    scoped_admin = Identity("s", "admin", frozenset({"acme", "globex"}))
    assert not can(scoped_admin, "release.release") and not can(scoped_admin, "release.release", "acme")
    assert not can(scoped_admin, "release.hold") and can(admin, "release.hold")
    assert can(scoped_admin, "window.enable", "acme") and not can(scoped_admin, "window.enable", "other")
    assert sees(viewer, None) and not sees(operator, None)  # a thing of no client: unscoped identities only
    assert sees(operator, "acme") and not sees(operator, "globex")


def test_migration_0005_matches_the_session_model(db: Database) -> None:
    assert UiSession.__tablename__ in Base.metadata.tables
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diffs if "ui_sessions" in repr(d)] == []
    cfg = Config()  # and down again, leaving the older tables alone, and up
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0004")
        connection.commit()
    tables = set(inspect(db.engine).get_table_names())
    assert "ui_sessions" not in tables and "silences" in tables
    db.upgrade()
    assert "ui_sessions" in inspect(db.engine).get_table_names()
