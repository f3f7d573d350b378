"""contrib/nginx/screening-console.conf, run as shipped (only the ports, the certificate
and the upstream changed for the test): Debian's nginx terminates TLS in front of a real
`screening web`, a login works through it, the session cookie is Secure, and plain http
is sent to https."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cli_helpers import ok
from tests.e2e.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
SNIPPET = REPO / "contrib" / "nginx" / "screening-console.conf"
PASSWORD = "proxied passphrase"


def certificate(where: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pbx.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("pbx.example.com")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def wait_for(url: str, **kwargs: object) -> None:
    for _ in range(100):
        try:
            httpx.get(url, timeout=1, trust_env=False, **kwargs)  # type: ignore[arg-type]
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail(f"nothing answered at {url}")


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(https URL, http URL) of nginx in front of `screening web` on a SQLite database."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("Debian's nginx is missing: scripts/bootstrap installs it")
    database = f"sqlite:///{tmp_path / 'screening.db'}"
    env = {**os.environ, "SCREENING_DATABASE_URL": database}
    from tests.cli_helpers import screening

    assert screening("db", "upgrade", env=env).code == 0
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    ok(
        screening(
            "user", "add", "admin", "--role", "admin", "--password-file", str(secret), env=env
        )
    )
    web_port, https_port, http_port = free_port(), free_port(), free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "screening", "web", "--listen", f"127.0.0.1:{web_port}"],
        env={**env, "SCREENING_WEB_SECURE_COOKIES": "true", "SCREENING_WEB_SECRET_KEY": "k" * 32},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cert, key = certificate(tmp_path)
    site = SNIPPET.read_text()
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = re.sub(r"\n\s*listen \[::\]:\d+( ssl)?;", "", site)  # no IPv6 in the test
    site = site.replace("/etc/ssl/certs/pbx.example.com.pem", str(cert))
    site = site.replace("/etc/ssl/private/pbx.example.com.key", str(key))
    site = site.replace("http://127.0.0.1:8089", f"http://127.0.0.1:{web_port}")
    assert site.count(str(web_port)) == 1 and str(https_port) in site
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
        "events {}\nhttp {\n"
        f"  access_log {tmp_path}/logs/access.log;\n"
        + "".join(
            f"  {kind}_temp_path {tmp_path}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + site
        + "\n}\n"
    )
    check = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    proxy = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{web_port}/login")
        wait_for(f"https://127.0.0.1:{https_port}/login", verify=False)
        yield f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}"
    finally:
        proxy.send_signal(signal.SIGQUIT)
        web.send_signal(signal.SIGTERM)
        proxy.wait(timeout=10)
        web.wait(timeout=20)


def test_the_console_behind_the_shipped_nginx_snippet(proxied: tuple[str, str]) -> None:
    https, http = proxied
    with httpx.Client(verify=False, trust_env=False, follow_redirects=False) as client:
        page = client.get(f"{https}/login")
        assert page.status_code == 200 and "Log in" in page.text
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        r = client.post(
            f"{https}/login",
            data={"name": "admin", "password": PASSWORD, "csrf": token.group(1)},
        )
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "screening_session=" in cookie and "secure" in cookie.lower()
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        home = client.get(f"{https}/")
        assert home.status_code == 200 and "Dashboard" in home.text
        moved = client.get(f"{http}/calls")
        assert moved.status_code == 301
        assert moved.headers["location"].startswith("https://") and moved.headers[
            "location"
        ].endswith("/calls")
