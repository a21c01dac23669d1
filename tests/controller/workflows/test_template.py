"""Interpolation quotes every value; redaction hides every secret."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.redact import Redactor
from controller.workflows.template import (
    quoting_problem,
    render_plain,
    render_shell,
    secret_env,
    secret_problem,
)


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")))
def test_any_value_reaches_the_command_as_one_unchanged_word(value: str) -> None:
    command = render_shell("printf %s {{ v }}", {"v": value})
    assert shlex.split(command) == ["printf", "%s", value]


def test_shell_sees_injection_attempts_as_data() -> None:
    evil = "x; touch /tmp/boxkeeper-pwned $(id) `id` && echo"
    out = subprocess.run(
        ["sh", "-c", render_shell("printf %s {{ v }}", {"v": evil})],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == evil


def test_argv_values_are_quoted_word_by_word() -> None:
    assert render_shell("{{ cmd }}", {"cmd": ("kill", "-USR2", "a b")}) == "kill -USR2 'a b'"


def test_unknown_name_raises() -> None:
    with pytest.raises(KeyError):
        render_shell("{{ nope }}", {})


def test_plain_rendering_for_urls() -> None:
    rendered = render_plain("http://{{ h }}/x?{{ captured.v }}", {"h": "a b", "captured.v": "1"})
    assert rendered == "http://a b/x?1"


@pytest.mark.parametrize(
    ("template", "bad"),
    [
        ("echo {{ a }}", False),
        ("echo '{{ a }}'", True),
        ('echo "x {{ a }} y"', True),
        ("echo 'x' {{ a }} \"y\"", False),
        ("echo \\' {{ a }}", False),
        ("awk '{print $1}' {{ a }}", False),
        ("sh -c 'echo {{ a }}'", True),
    ],
)
def test_placeholders_inside_quotes_are_refused(template: str, bad: bool) -> None:
    assert (quoting_problem(template) is not None) == bad


def test_redactor_hides_raw_and_quoted_forms() -> None:
    redact = Redactor(["s3cr'et", ""])
    command = render_shell("mysql -p{{ p }}", {"p": "s3cr'et"})
    assert "s3cr" not in redact(command)
    assert redact("password=s3cr'et; again s3cr'et") == "password=***; again ***"
    assert redact("nothing secret") == "nothing secret"


@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1))
def test_a_secret_reaches_its_assignment_through_the_environment_only(value: str) -> None:
    template = "PW={{ pw }} sh -c 'printf %s \"$PW\"' && echo {{ other }}"
    text = render_shell(template, {"pw": value, "other": "x"}, {"pw"})
    assert text == render_shell(template, {"pw": "something else", "other": "x"}, {"pw"})  # no trace
    env = secret_env(template, {"pw": value, "other": "x"}, {"pw"})
    out = subprocess.run(["sh", "-c", text], env=env, capture_output=True).stdout
    assert out == (value + "x\n").encode()


@pytest.mark.parametrize(("template", "ok"), [
    ("MYSQL_PWD={{ pw }} mysql -N", True),
    ("a=1; B=2 MYSQL_PWD={{ pw }} mysqldump | gzip", True),
    ("{ MYSQL_PWD={{ pw }} mysql; } && x", True),
    ("export PW={{ pw }}", True),
    ("if true; then PW={{ pw }} cmd; fi", True),
    ("env MYSQL_PWD={{ pw }} mysql", False),
    ("mysql -p{{ pw }}", False),
    ("mysql --password={{ pw }}", False),
    ("echo {{ pw }} | cmd", False),
    ("cmd X={{ pw }}", False),
])
def test_a_secret_may_only_be_assigned(template: str, ok: bool) -> None:
    assert (secret_problem(template, {"pw"}) is None) is ok
    assert secret_problem(template, set()) is None  # not a secret: anywhere (quoted)


@pytest.mark.parametrize(("template", "ok"), [
    ("1cv8 DESIGNER /N u /P {{ pw }} /UpdateCfg f", True),
    ("rac infobase info --infobase-user=u --infobase-pwd={{ pw }}", True),
    ("PW={{ pw }} 1cv8 DESIGNER /P {{ pw }}", True),
    ("1cv8 DESIGNER /N {{ pw }}", False),  # only as the value of a password option
    ("echo {{ pw }}; 1cv8 DESIGNER /P x", False),
    ("mysql --password={{ pw }}", False),
    ("cmd /P{{ pw }}", False),
])
def test_password_in_argv_is_accepted_only_after_a_1c_password_option(template: str, ok: bool) -> None:
    """The step's explicit ``password_in_argv: true``: 1C's ``/P`` and ``--infobase-pwd=`` take a
    password only in argv (DOMAIN.md); nothing else opens up, and without the flag neither is accepted."""
    assert (secret_problem(template, {"pw"}, password_in_argv=True) is None) is ok
    if "/P {{" in template or "--infobase-pwd={{" in template:
        assert secret_problem(template, {"pw"}) is not None
