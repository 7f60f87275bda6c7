"""WADO-RS frame serving: Overread against Orthanc's DICOMweb plugin, same machine, same run.

A synthetic 300-slice 512x512 CT series goes into both servers; then every frame
is fetched over loopback by the same client (8 threads, keep-alive sessions,
uncompressed Explicit VR Little Endian requested from both). Prints frames/s for
each, the ratio Overread / Orthanc (goal >= 1.0), and the time to the first frame
of a series never read before. Orthanc is started by scripts/services.sh unless
PACS_DICOMWEB_URL already points at one.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import django
import requests

ROOT = Path(__file__).resolve().parent.parent
SLICES, SIZE, THREADS, ROUNDS = 300, 512, 8, 3
ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'


@dataclass
class Server:
    name: str
    root: str  # DICOMweb root, no trailing slash
    auth: tuple[str, str] | None = None
    headers: dict[str, str] | None = None

    def session(self) -> requests.Session:
        session = requests.Session()
        session.auth = self.auth
        session.headers.update({"Accept": ACCEPT, **(self.headers or {})})
        return session


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def _orthanc() -> tuple[Server, str, Callable[[], None]]:
    """Orthanc's DICOMweb root and REST root; starts a private one when none is configured."""
    stop: Callable[[], None] = lambda: None  # noqa: E731
    if not os.environ.get("PACS_DICOMWEB_URL"):
        script = str(ROOT / "scripts" / "services.sh")
        out = subprocess.run([script, "orthanc-start"], check=True, capture_output=True, text=True).stdout
        for name, value in re.findall(r"^export (\w+)=(.*)$", out, flags=re.M):
            os.environ[name] = shlex.split(value)[0]
        stop = lambda: subprocess.run([script, "orthanc-stop"], check=False, capture_output=True)  # noqa: E731
    auth = (os.environ.get("PACS_USERNAME", ""), os.environ.get("PACS_PASSWORD", ""))
    root = os.environ["PACS_DICOMWEB_URL"].rstrip("/")
    rest = os.environ.get("ORTHANC_URL", root.rsplit("/", 1)[0])
    return Server("Orthanc", root, auth=auth), rest, stop


def _load_orthanc(rest: str, auth: tuple[str, str], files: list[Path]) -> None:
    with requests.Session() as session:
        session.auth = auth
        for path in files:
            response = session.post(f"{rest}/instances", data=path.read_bytes(), timeout=30)
            response.raise_for_status()


def _load_overread(files: list[Path]) -> None:
    from viewer.ingest.service import ingest_file

    for path in files:
        outcome = ingest_file(source=path, name=path.name, origin="import")
        if outcome.status == "rejected":
            raise RuntimeError(f"{path.name}: {outcome.reason}")


def _overread_server(port: int) -> tuple[Server, subprocess.Popen[bytes]]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.get_or_create(username="bench-reader")
    user.groups.add(Group.objects.get(name="radiologist"))
    token, _ = Token.objects.get_or_create(user=user)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    command = [
        sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", "2", "--threads", "8", "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    _wait_until_up(f"http://127.0.0.1:{port}/health/")
    server = Server(
        "Overread", f"http://127.0.0.1:{port}/dicomweb", headers={"Authorization": f"Token {token.key}"}
    )
    return server, process


def _frame_urls(server: Server, study_uid: str, series_uid: str, sop_uids: list[str]) -> list[str]:
    base = f"{server.root}/studies/{study_uid}/series/{series_uid}/instances"
    return [f"{base}/{sop}/frames/1" for sop in sop_uids]


def _fetch_all(server: Server, urls: list[str]) -> tuple[float, int]:
    """Fetches every URL with THREADS keep-alive sessions; returns (seconds, bytes)."""
    local = threading.local()

    def fetch(url: str) -> int:
        if not hasattr(local, "session"):
            local.session = server.session()
        response = local.session.get(url, timeout=30)
        response.raise_for_status()
        return len(response.content)

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        received = sum(pool.map(fetch, urls))
    return time.perf_counter() - started, received


def _first_frame_seconds(server: Server, url: str) -> float:
    with server.session() as session:
        started = time.perf_counter()
        session.get(url, timeout=30).raise_for_status()
        return time.perf_counter() - started


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.core.management import call_command

    from fixtures.synthetic import make_ct_study, write_study

    call_command("migrate", verbosity=0)
    orthanc, orthanc_rest, stop_orthanc = _orthanc()
    port = _free_port()
    overread, gunicorn = _overread_server(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            series = make_ct_study(
                seed=3000 + int(time.time()) % 1000, slices=SLICES, rows=SIZE, columns=SIZE
            )
            fresh = make_ct_study(seed=7000 + int(time.time()) % 1000, slices=4, rows=SIZE, columns=SIZE)
            files = write_study(series, Path(tmp) / "series")
            fresh_files = write_study(fresh, Path(tmp) / "fresh")
            print(f"generated {SLICES}+4 slices of {SIZE}x{SIZE} in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            _load_overread(files + fresh_files)
            print(f"Overread ingest: {len(files) / (time.perf_counter() - started):.0f} instances/s")
            started = time.perf_counter()
            _load_orthanc(orthanc_rest, orthanc.auth or ("", ""), files + fresh_files)
            print(f"Orthanc ingest (REST): {len(files) / (time.perf_counter() - started):.0f} instances/s")

        sops = [ds.SOPInstanceUID for ds in series.datasets]
        fresh_sop = fresh.datasets[0].SOPInstanceUID
        rates = {}
        for server in (overread, orthanc):
            urls = _frame_urls(server, series.study_uid, series.series_uid, sops)
            # Warm every server process (imports, connections): the figure is about a series
            # never read before, not about a process never used before.
            _fetch_all(server, urls[: THREADS * 2])
            fresh_url = _frame_urls(server, fresh.study_uid, fresh.series_uid, [fresh_sop])[0]
            first = _first_frame_seconds(server, fresh_url)
            best = 0.0
            for _ in range(ROUNDS):
                seconds, received = _fetch_all(server, urls)
                best = max(best, len(urls) / seconds)
            rates[server.name] = best
            print(
                f"{server.name:<8} frames: {best:7.0f} frames/s "
                f"(best of {ROUNDS}, {received / 1e6:.0f} MB a round), "
                f"first frame of an unread series {first * 1000:.0f} ms"
            )
        print(f"ratio Overread / Orthanc: {rates['Overread'] / rates['Orthanc']:.2f}x (goal >= 1.0)")
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=20)
        stop_orthanc()


if __name__ == "__main__":
    main()
