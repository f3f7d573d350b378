"""The redress jCard as a caller's network gets it: a real `screening web` (a process of its
own, settings from SCREENING_REDRESS_*) serves /redress/jcard and /redress/cert.pem over
HTTP without a session; the JWS verifies with the certificate it serves; hostile requests
are bounded. And `screening redress show` as an admin runs it, and the admin guide's
example (openssl, the settings, the nginx location) as written."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from screening import config
from screening.core.wire import blocked_reason
from tests.cli_helpers import run, screening, start_web
from tests.db.test_proxy import certificate as proxy_certificate
from tests.db.test_proxy import wait_for
from tests.e2e.conftest import free_port
from tests.redresskeys import Pair, verified, write_pair

JCARD_URL = "https://pbx.example.com/redress/jcard"
CERT_URL = "https://certs.example.net/pbx/redress.pem"


@dataclass
class Web:
    url: str
    port: int
    proc: subprocess.Popen[bytes]


def redress_env(pair: Pair) -> dict[str, str]:
    return {
        "SCREENING_REDRESS_NAME": "Example PBX support",
        "SCREENING_REDRESS_PHONE": "+15551230000",
        "SCREENING_REDRESS_EMAIL": "unblock@example.com",
        "SCREENING_REDRESS_URL": "https://example.com/unblock",
        "SCREENING_REDRESS_JCARD_URL": JCARD_URL,
        "SCREENING_REDRESS_CERT_URL": CERT_URL,
        "SCREENING_REDRESS_KEY_FILE": str(pair.key_file),
        "SCREENING_REDRESS_CERT_FILE": str(pair.cert_file),
    }


@contextlib.contextmanager
def running_web(folder: Path, extra: dict[str, str]) -> Iterator[Web]:
    """`screening web` on a new SQLite database with `extra` settings, stopped after."""
    env = {
        "SCREENING_DATABASE_URL": f"sqlite:///{folder / 'screening.db'}",
        "SCREENING_WEB_SECRET_KEY": "k" * 48,
        "SCREENING_METRICS_LISTEN": "off",
    }
    assert run("db", "upgrade", env=env).code == 0
    port = free_port()
    proc = start_web({**env, **extra}, port, folder / "web.log")
    try:
        yield Web(f"http://127.0.0.1:{port}", port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    return write_pair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, pair: Pair) -> Iterator[Web]:
    """`screening web` with redress set up, shared by this module's tests."""
    with running_web(tmp_path_factory.mktemp("web"), redress_env(pair)) as started:
        yield started


def get(url: str, **kwargs: object) -> httpx.Response:
    return httpx.get(url, trust_env=False, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_the_jcard_and_its_certificate_are_served_without_a_session(web: Web) -> None:
    card = get(f"{web.url}/redress/jcard")
    assert card.status_code == 200
    assert card.headers["content-type"] == "application/jose"
    assert card.headers["cache-control"] == "no-store"
    assert "set-cookie" not in card.headers  # no session made for a stranger
    cert = get(f"{web.url}/redress/cert.pem")
    assert cert.status_code == 200
    assert cert.headers["content-type"] == "application/pem-certificate-chain"
    # What a caller's network does: the x5u's certificate checks the signature.
    served = x509.load_pem_x509_certificate(cert.content)
    header, payload = verified(card.text, served)
    assert json.loads(header) == {"alg": "ES256", "typ": "vcard+json", "x5u": CERT_URL}
    assert abs(payload["iat"] - time.time()) <= 31  # re-signed every 30 s
    assert ["tel", {"type": "work"}, "uri", "tel:+15551230000"] in payload["jcard"][1]
    head = httpx.head(f"{web.url}/redress/jcard", trust_env=False, timeout=10)
    assert head.status_code == 200 and head.content == b""


def test_a_post_a_body_or_a_huge_query_is_refused_and_the_console_stays_up(web: Web) -> None:
    assert httpx.post(f"{web.url}/redress/jcard", trust_env=False).status_code == 405
    big = httpx.post(f"{web.url}/redress/jcard", content=b"x" * 1_000_000, trust_env=False)
    assert big.status_code == 413  # refused on its Content-Length, the body never read
    sneaky = httpx.request(
        "GET", f"{web.url}/redress/cert.pem", content=b"x" * 100, trust_env=False
    )
    assert sneaky.status_code == 413
    assert get(f"{web.url}/redress/jcard?{'a=1&' * 2000}").status_code == 200  # not parsed
    answer = raw(web.port, f"GET /redress/jcard?{'a' * 1_000_000} HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith("HTTP/1.1 4") or answer == ""  # refused or cut off, no 5xx
    assert get(f"{web.url}/redress/jcard").status_code == 200
    assert web.proc.poll() is None


def raw(port: int, request: str) -> str:
    """Send `request` as bytes for as long as the server takes them; its first line back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(request.encode())
            return s.recv(4096).decode(errors="replace").split("\r\n", 1)[0]
        except (BrokenPipeError, ConnectionResetError):
            return ""


def test_both_answer_404_when_redress_is_not_set_up(tmp_path: Path) -> None:
    with running_web(tmp_path, {}) as bare:
        for path in ("/redress/jcard", "/redress/cert.pem"):
            r = get(f"{bare.url}{path}")
            assert r.status_code == 404, path
            assert r.headers["content-type"].startswith("text/plain")
            assert r.text == "not found: no redress jCard is set up here\n"


def test_the_console_does_not_start_with_a_key_it_cannot_read(pair: Pair, tmp_path: Path) -> None:
    env = {
        **redress_env(pair),
        "SCREENING_DATABASE_URL": f"sqlite:///{tmp_path / 'screening.db'}",
        "SCREENING_REDRESS_KEY_FILE": str(tmp_path / "missing.key"),
    }
    assert run("db", "upgrade", env=env).code == 0
    r = screening("web", "--listen", f"127.0.0.1:{free_port()}", env=env, timeout=30)
    assert (r.code, r.err.strip().splitlines()[-1]) == (
        2,
        f"screening: error: redress.key_file: {tmp_path / 'missing.key'}: cannot read it: "
        "No such file or directory",
    )


def test_redress_show_prints_the_call_info_and_603_reason(pair: Pair) -> None:
    env = redress_env(pair)
    r = screening("redress", "show", env=env)
    assert r.code == 0, r.err
    assert f"608: Call-Info: <{JCARD_URL}>;purpose=jwscard" in r.out.splitlines()
    assert "607: no Call-Info" in r.out.splitlines()
    reason = blocked_reason(config.load(env).wire)
    assert f"603+ Reason (not sent: sip.provider_mode is off): {reason}" in r.out
    assert r.out.rstrip().endswith("problems: none")
    shown = screening("redress", "show", "--json", env=env)
    data = json.loads(shown.out)
    assert data["call_info"] == f"<{JCARD_URL}>;purpose=jwscard" and data["reason_603"] == reason
    assert data["settings"]["redress.on"] == "608" and data["problems"] == []
    verified(data["jws"], pair.cert)


def test_redress_show_exits_1_naming_a_missing_key_file(pair: Pair, tmp_path: Path) -> None:
    missing = tmp_path / "gone.key"
    r = screening(
        "redress", "show", env={**redress_env(pair), "SCREENING_REDRESS_KEY_FILE": str(missing)}
    )
    problem = f"redress.key_file: {missing}: cannot read it: No such file or directory"
    assert r.code == 1
    assert f"problem: {problem}" in r.out.splitlines()
    assert r.err == f"screening: error: the redress jCard is not usable: {problem}\n"


def test_redress_show_has_help() -> None:
    r = screening("redress", "show", "--help")
    assert r.code == 0 and "Usage: screening redress show" in r.out
    assert "Call-Info" in r.out and "--json" in r.out


# -- the admin guide's example, as written ----------------------------------------------------

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "admin-guide.md"


def guide_block(name: str) -> str:
    """The fenced block right below `<!-- redress-example: NAME -->` in the admin guide."""
    found = re.search(
        rf"^<!-- redress-example: {name} -->\n```\w+\n(.*?)^```", GUIDE.read_text(), re.S | re.M
    )
    assert found, f"docs/admin-guide.md has no redress-example block {name!r}"
    return found.group(1)


def guide_setup(folder: Path) -> Path:
    """The guide's openssl lines run in `folder` (chgrp needs the screening group: not here),
    and its settings with /etc/screening/ as `folder`: the settings file."""
    commands = [c for c in guide_block("keys").splitlines() if c.startswith("openssl ")]
    assert len(commands) == 2, commands
    for command in commands:
        subprocess.run(shlex.split(command), cwd=folder, check=True, capture_output=True)
    settings = folder / "screening.toml"
    settings.write_text(guide_block("settings").replace("/etc/screening/", f"{folder}/"))
    return settings


def test_the_guides_keys_and_settings_give_a_jcard_that_verifies(tmp_path: Path) -> None:
    settings = guide_setup(tmp_path)
    r = screening("--config", str(settings), "redress", "show", "--json")
    assert r.code == 0, r.err
    shown = json.loads(r.out)
    assert shown["problems"] == [] and shown["configured"]
    cert = x509.load_pem_x509_certificate((tmp_path / "redress.pem").read_bytes())
    header, payload = verified(shown["jws"], cert)
    assert json.loads(header)["x5u"] == "https://pbx.example.com/redress/cert.pem"
    assert payload["jcard"][1][1] == ["fn", {}, "text", "Example PBX support"]


def nginx_site(
    folder: Path, location: str, web_port: int, port: int | None = None
) -> tuple[Path, int]:
    """nginx.conf for a TLS server on `port` (else a free one) holding `location`; (file,
    its port)."""
    tls_cert, tls_key = proxy_certificate(folder)
    port = port or free_port()
    block = location.replace("http://127.0.0.1:8089", f"http://127.0.0.1:{web_port}")
    assert str(web_port) in block
    (folder / "logs").mkdir()
    temps = "".join(
        f"  {kind}_temp_path {folder}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = folder / "nginx.conf"
    conf.write_text(
        f"pid {folder}/nginx.pid;\nerror_log {folder}/logs/error.log;\nevents {{}}\nhttp {{\n"
        f"  access_log {folder}/logs/access.log;\n{temps}"
        f"  server {{\n    listen 127.0.0.1:{port} ssl;\n"
        f"    ssl_certificate {tls_cert};\n    ssl_certificate_key {tls_key};\n"
        # The rest of the public site stands for whatever else the admin serves there.
        f"    location / {{ return 404; }}\n{block}  }}\n}}\n"
    )
    return conf, port


@contextlib.contextmanager
def guide_proxy(folder: Path, web_port: int, port: int | None = None) -> Iterator[str]:
    """Debian's nginx with the admin guide's location in front of `screening web` on
    `web_port`, on `port` (else a free one), until the jCard answers; its https URL."""
    conf, port = nginx_site(folder, guide_block("nginx"), web_port, port)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proxy = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(folder), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        public = f"https://127.0.0.1:{port}"
        wait_for(f"{public}/redress/jcard", verify=False)
        yield public
    finally:
        proxy.send_signal(signal.SIGQUIT)
        proxy.wait(timeout=10)


def test_the_guides_nginx_location_passes_the_jcard_and_nothing_else(tmp_path: Path) -> None:
    settings = guide_setup(tmp_path)
    with (
        running_web(tmp_path, {"SCREENING_CONFIG": str(settings)}) as console,
        guide_proxy(tmp_path, console.port) as public,
    ):
        fetch = httpx.Client(verify=False, trust_env=False, timeout=10)
        cert = x509.load_pem_x509_certificate(fetch.get(f"{public}/redress/cert.pem").content)
        card = fetch.get(f"{public}/redress/jcard")
        assert card.headers["content-type"] == "application/jose"
        verified(card.text, cert)
        assert fetch.post(f"{public}/redress/jcard").status_code == 403  # limit_except
        assert fetch.get(f"{public}/login").status_code == 404  # the console stays private
