"""Runs upstream bty 0.77.2's own web tests over HTTP against our bty-web.

Upstream's `app_client` fixture builds its FastAPI app in-process; this replaces it with an
httpx client on a real `bty web` (the binary in $BTY_BIN) started on a scratch state dir with
upstream's test password and fake live-env artifacts. The session's CSRF token is added to every
cookie state change, as our UI does (upstream has no CSRF tokens). Tests that reach into
upstream's Python internals (`app_client.app`, its database) cannot run against another
implementation and fail with AttributeError; `run.sh` reports them apart.
"""

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

BTY = os.environ["BTY_BIN"]


@pytest.fixture
def app_client(tmp_path: Path):
    import test_web
    from bty.web._releases import ARTIFACT_NAMES

    state = tmp_path / "state"
    (state / "boot").mkdir(parents=True)
    for name, data in zip(ARTIFACT_NAMES, [b"fake-kernel", b"fake-initrd", b"fake-squashfs"]):
        (state / "boot" / name).write_bytes(data)
    etc = tmp_path / "etc"
    etc.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BTY_")}
    env.update(BTY_CONFIG_DIR=str(etc), BTY_ADMIN_PASSWORD=test_web.TEST_PASSWORD)
    for k in ("BTY_SERVER_TRUSTED_PROXY",):
        if k in os.environ:
            env[k] = os.environ[k]
    proc = subprocess.Popen(
        [BTY, "web", "--listen", "127.0.0.1:0", "--state-dir", str(state)],
        env=env, stderr=subprocess.PIPE, text=True,
    )
    addr = None
    for line in proc.stderr:
        m = re.match(r"bty-web: listening on http://(\S+)", line)
        if m:
            addr = m.group(1)
            break
    assert addr, "bty web did not start"
    csrf = {}

    def add_csrf(request: httpx.Request) -> None:
        if request.method not in ("GET", "HEAD") and "bty-token" in request.headers.get("cookie", ""):
            request.headers.setdefault("X-CSRF-Token", csrf.get("token", ""))

    client = httpx.Client(
        base_url=f"http://{addr}", headers={"Host": "testserver"}, event_hooks={"request": [add_csrf]}
    )
    r = client.post("/ui/login", data={"password": test_web.TEST_PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = r.cookies.get("bty-token")
    page = client.get("/ui/account", cookies={"bty-token": cookie}).text
    csrf["token"] = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)
    client.cookies.clear()
    test_web.AUTH.clear()
    test_web.AUTH["bty-token"] = cookie
    try:
        yield client
    finally:
        test_web.AUTH.clear()
        client.close()
        proc.kill()
        proc.wait()
