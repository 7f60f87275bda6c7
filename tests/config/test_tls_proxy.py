"""Behind a TLS proxy (docs/security.md, "Running behind TLS"): the production settings with
BEHIND_TLS_PROXY=true trust the proxy's X-Forwarded-Proto, and serve HTTPS's protections."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = "overread.hospital.example"

# Asks for the sign-in page as a browser through the proxy would, and as one going around it.
ASK = f"""
import json
from django.conf import settings
from django.test import Client, override_settings

# No collectstatic here: static URLs without the manifest, the rest as in production.
static = "django.contrib.staticfiles.storage.StaticFilesStorage"
plain = {{**settings.STORAGES, "staticfiles": {{"BACKEND": static}}}}
client = Client()
with override_settings(STORAGES=plain):
    direct = client.get("/login/", HTTP_HOST="{HOST}")
    proxied = client.get("/login/", HTTP_HOST="{HOST}", HTTP_X_FORWARDED_PROTO="https")
cookie = proxied.cookies.get("csrftoken")
print(json.dumps({{
    "direct": [direct.status_code, direct.get("Location", "")],
    "proxied": proxied.status_code,
    "headers": {{name: proxied.get(name, "") for name in (
        "Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options",
        "Referrer-Policy", "Cross-Origin-Opener-Policy", "X-Frame-Options")}},
    "cookie": {{"secure": cookie["secure"], "samesite": cookie["samesite"]}} if cookie else None,
}}))
"""


def _production(tmp_path: Path, **overrides: str) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if key not in {"DJANGO_SETTINGS_MODULE", "DEBUG"}}
    env.pop("DATABASE_URL", None)  # the page needs no database: an empty SQLite file will do
    env.update(
        {
            "SECRET_KEY": "tls-proxy-test-" + "x" * 50,
            "ALLOWED_HOSTS": HOST,
            "HTTPS": "true",
            "BEHIND_TLS_PROXY": "true",
            "OVERREAD_VAR_DIR": str(tmp_path / "var"),
            **overrides,
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", ASK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_behind_the_proxy_https_is_trusted_and_plain_http_redirected(tmp_path):
    answer = _production(tmp_path)
    assert answer["direct"] == [301, f"https://{HOST}/login/"]
    assert answer["proxied"] == 200
    headers = answer["headers"]
    assert isinstance(headers, dict)
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "script-src 'self' 'wasm-unsafe-eval'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"
    assert answer["cookie"] == {"secure": True, "samesite": "Lax"}


def test_without_behind_tls_proxy_the_forwarded_header_is_not_trusted(tmp_path):
    answer = _production(tmp_path, BEHIND_TLS_PROXY="false")
    assert answer["direct"] == [301, f"https://{HOST}/login/"]
    assert answer["proxied"] == 301  # a client cannot claim HTTPS by sending the header itself
