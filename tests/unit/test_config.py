"""The settings file and the environment: what an admin writes in /etc/screening/screening.toml,
what overrides it, and what a mistake in either says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from screening import config
from screening.core.errors import ConfigError
from tests.cli_helpers import ok, run

FULL = """
database_url = "postgresql://screening@db.example/screening"
default_region = "DE"
decision_timeout_ms = 250

[ari]
url = "http://127.0.0.1:8088"
user = "screening"
password_file = "{secret}"
app = "screening"

[agi]
listen = "127.0.0.1:4600"

[reputation]
reports = 5
days = 14

[stir]
ca_file = "/etc/screening/sti-roots.pem"
relax_x5u = false
cache_dir = "/var/cache/screening/stir"
cache_max_age_s = 3600
fetch_wait_ms = 500

[log]
format = "json"
"""


def write(tmp_path: Path, text: str) -> str:
    secret = tmp_path / "ari-password"
    secret.write_text("from-a-file\n")
    path = tmp_path / "screening.toml"
    path.write_text(text.replace("{secret}", str(secret)))
    return str(path)


def test_every_setting_from_the_file(tmp_path: Path) -> None:
    cfg = config.load({}, write(tmp_path, FULL))
    assert "from-a-file" not in repr(cfg)  # a password never reaches a log or traceback
    assert cfg.database_url == "postgresql+psycopg://screening@db.example/screening"
    assert (cfg.default_region, cfg.decision_timeout) == ("DE", 0.25)
    assert (cfg.ari_password, cfg.agi_host, cfg.agi_port) == ("from-a-file", "127.0.0.1", 4600)
    assert (cfg.reputation_reports, cfg.reputation_days) == (5, 14)
    assert (cfg.stir_ca_file, cfg.stir_cache_max_age, cfg.stir_fetch_wait) == (
        "/etc/screening/sti-roots.pem",
        3600,
        0.5,
    )
    assert cfg.log_format == "json"


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    loaded = config.load_all(
        {"SCREENING_DEFAULT_REGION": "GB", "SCREENING_AGI_LISTEN": "4700"}, path
    )
    assert (loaded.config.default_region, loaded.config.agi_port) == ("GB", 4700)
    assert loaded.sources["default_region"] == "SCREENING_DEFAULT_REGION"
    assert loaded.sources["reputation.days"] == f"{path}: reputation.days"
    assert loaded.sources["ari.password"].startswith(f"{path}: ari.password_file")
    assert loaded.sources["ari.url"] == f"{path}: ari.url"
    assert config.load_all({}, None).sources["ari.url"] == "default"


def test_secrets_from_files_in_the_environment(tmp_path: Path) -> None:
    url = tmp_path / "db-url"
    url.write_text("postgresql://u:pw@h/db\n")
    cfg = config.load({"SCREENING_DATABASE_URL_FILE": str(url)})
    assert cfg.database_url == "postgresql+psycopg://u:pw@h/db"
    assert "pw" not in repr(cfg)


def test_the_file_is_found_through_screening_config(tmp_path: Path) -> None:
    path = write(tmp_path, 'default_region = "FR"\n')
    assert config.load({"SCREENING_CONFIG": path}).default_region == "FR"


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("colour = 'red'\n", "colour", "unknown setting"),
        ("[ari]\nurl = 'x'\npasword = 'p'\n", "ari.pasword", "unknown setting"),
        ("decision_timeout_ms = '300'\n", "decision_timeout_ms", "expected a whole number"),
        ("decision_timeout_ms = 0\n", "decision_timeout_ms", "from 1 to 10000"),
        ("[stir]\nrelax_x5u = 'yes'\n", "stir.relax_x5u", "expected true or false"),
        ("default_region = 'XX'\n", "default_region", "two-letter region"),
        ("[ari]\nurl = '127.0.0.1:8088'\n", "ari.url", "expected http://HOST:PORT"),
        ("[agi]\nlisten = 'nowhere'\n", "agi.listen", "expected HOST:PORT"),
        ("[log]\nformat = 'xml'\n", "log.format", "expected text or json"),
        ("[ari]\npassword_file = '/nonexistent/pw'\n", "ari.password_file", "cannot read"),
        ("database_url = 5\n", "database_url", "expected a string"),
    ],
)
def test_a_mistake_in_the_file_names_file_key_and_what_was_expected(
    tmp_path: Path, text: str, field: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"^{path}: {field}: .*{expected}"):
        config.load({}, path)


def test_a_file_that_is_not_toml_or_not_there(tmp_path: Path) -> None:
    bad = write(tmp_path, "this is = = not toml\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: not valid TOML"):
        config.load({}, bad)
    with pytest.raises(ConfigError, match="no such file"):
        config.load({}, str(tmp_path / "missing.toml"))


def test_a_wrong_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^SCREENING_REPUTATION_DAYS: expected a whole"):
        config.load({"SCREENING_REPUTATION_DAYS": "a week"})
    with pytest.raises(ConfigError, match=r"^SCREENING_STIR_RELAX_X5U: expected yes or no"):
        config.load({"SCREENING_STIR_RELAX_X5U": "maybe"})


def test_config_show_prints_sources_and_hides_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    env = {"SCREENING_DATABASE_URL": "postgresql://u:hunter2@h/db"}
    out = ok(run("--config", path, "config", "show", env=env))
    assert f"settings file: {path}" in out
    assert "hunter2" not in out and "from-a-file" not in out
    assert "postgresql+psycopg://u:***@h/db" in out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert lines["ari.password"].split()[2:4] == ["(set,", "hidden)"]
    assert lines["database_url"].endswith("SCREENING_DATABASE_URL")
    assert lines["agi.listen"].split()[2:] == ["127.0.0.1:4600", f"{path}:", "agi.listen"]
    data = json.loads(ok(run("--config", path, "config", "show", "--json", env=env)))
    assert {s["key"] for s in data["settings"]} == {s.key for s in config.SETTINGS}


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:hun/ter2@h/db",  # a "/" in the password: the old pattern stopped there
        "postgresql://u:hun@ter2@h/db",  # an "@"
        "postgresql://u@h/db?password=hunter2",  # as a query parameter, as psycopg takes it
        "mariadb://u@h/db?ssl_key=x&passwd=hunter2",
        "postgresql://u:hun?ter2@h/db",  # a "?": the query seemed to begin in the password
        "postgresql://u:hun?ter2@h/db?sslmode=require",
        "postgresql://u@h/db?password=hun@ter2",  # an "@" in a query value
    ],
)
def test_config_show_hides_every_form_of_the_database_password(url: str) -> None:
    out = ok(run("config", "show", env={"SCREENING_DATABASE_URL": url}))
    assert "hunter2" not in out and "ter2" not in out
    data = ok(run("config", "show", "--json", env={"SCREENING_DATABASE_URL": url}))
    assert "hunter2" not in data and "ter2" not in data
    assert "***" in out


def test_a_bad_file_stops_any_command_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, "[ari]\npasword = 'p'\n")
    r = run("--config", path, "block", "list")
    assert r.code == 2
    assert r.err.startswith(f"screening: error: {path}: ari.pasword: unknown setting")


def test_json_log_lines_carry_the_call_fields() -> None:
    import logging

    from screening.cli import JsonLines

    record = logging.LogRecord(
        "screening.service.screener", logging.INFO, "", 0, "call %s", ("c1",), None
    )
    record.__dict__.update(
        {"channel": "c1", "caller": "+15551234567", "sip_code": 607, "door": "agi"}
    )
    line = json.loads(JsonLines().format(record))
    assert line["message"] == "call c1" and line["level"] == "info"
    assert (line["channel"], line["caller"], line["sip_code"], line["door"]) == (
        "c1",
        "+15551234567",
        607,
        "agi",
    )
    plain = json.loads(
        JsonLines().format(logging.LogRecord("x", logging.WARNING, "", 0, "m", (), None))
    )
    assert set(plain) == {"time", "level", "logger", "message"}


def test_the_shipped_example_file_names_every_setting_and_loads() -> None:
    import tomllib

    example = Path(__file__).resolve().parents[2] / "contrib" / "screening.toml"
    env = {"SCREENING_ARI_PASSWORD": "x", "SCREENING_WEB_SECRET_KEY": "y"}
    loaded = config.load_all(env, str(example))
    assert loaded.config.stir_cache_dir == "/var/cache/screening/stir"
    data = tomllib.loads(example.read_text())
    keys = set()
    for key, value in data.items():
        keys |= {f"{key}.{sub}" for sub in value} if isinstance(value, dict) else {key}
    secrets = {s.key for s in config.SETTINGS if s.secret}
    keys = {k.removesuffix("_file") if k.removesuffix("_file") in secrets else k for k in keys}
    assert keys == {s.key for s in config.SETTINGS}


REPO = Path(__file__).resolve().parents[2]
REFERENCE_DOC = REPO / "docs" / "configuration.md"


def settings_table(doc: str) -> str:
    """What stands between the settings markers of docs/configuration.md."""
    begin, end = doc.find("<!-- settings: begin"), doc.find("<!-- settings: end -->")
    assert 0 <= begin < end, "docs/configuration.md: no <!-- settings: begin/end --> markers"
    return doc[doc.index("\n", begin) + 1 : end]


def test_the_configuration_doc_is_the_declared_reference() -> None:
    # The settings were declared three times (Config's defaults, SETTINGS, a hand-made
    # mapping) and the docs had two hand-made tables: now one declaration writes them.
    assert settings_table(REFERENCE_DOC.read_text()) == config.reference(), (
        "docs/configuration.md's settings table is not what the settings declare "
        "(screening/config.py): run scripts/config-reference to write it again"
    )
    assert ok(run("config", "reference")) == config.reference()


def test_the_regeneration_command_writes_the_declared_table(tmp_path: Path) -> None:
    # The command docs/configuration.md gives for writing its table again.
    stale = tmp_path / "configuration.md"
    doc = REFERENCE_DOC.read_text()
    stale.write_text(doc.replace(settings_table(doc), "| an old table |\n"))
    script = REPO / "scripts" / "config-reference"
    assert "scripts/config-reference" in doc
    done = subprocess.run([script, stale], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert stale.read_text() == doc


def test_defaults_are_the_declared_ones(tmp_path: Path) -> None:
    from screening.core.challenge import Settings

    (tmp_path / "empty.toml").write_text("")
    assert config.load({}, str(tmp_path / "empty.toml")) == config.Config()
    assert config.Config().challenge == Settings()  # the core's own defaults agree
    assert config.Config().decision_timeout == 0.3  # ms in the file, seconds in the code
