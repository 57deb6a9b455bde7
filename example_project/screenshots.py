"""Take the README's screenshots from the running demo (``make screenshots``).

Seeds a fresh demo (temporary SQLite and MEDIA_ROOT, offline, exactly as
``make demo`` does), serves it on a free loopback port, and photographs three
pages in headless Debian Chromium through Selenium: the gallery, the admin's
photo list and the review queue. The PNGs go to ``docs/images/``.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` test
dependency; an explicit driver path keeps Selenium Manager (and its
downloads) out.

    .venv/bin/python example_project/screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "example_project" / "manage.py"
WIDTH = 1400
#: (file name, path, an element that shows the page is complete).
PAGES = (
    ("gallery.png", "/", "table"),
    ("admin-photos.png", "/admin/gallery/photo/", "#result_list"),
    (
        "review-queue.png",
        "/admin/cloudinary_analysis/moderationdecision/",
        "#result_list",
    ),
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    f"--window-size={WIDTH},900",
)
#: Environment variables that would switch the demo away from its offline defaults.
SWITCHES = ("CLOUDINARY_URL", "CELERY_BROKER_URL", "DATABASE_URL", "DJANGO_DEBUG")


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def demo_server(tmp: Path) -> Iterator[str]:
    """Seed the demo in ``tmp`` and serve it; yield its base URL."""
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DEMO_DB_PATH=str(tmp / "demo.sqlite3"),
        MEDIA_ROOT=str(tmp / "media"),
    )
    port = free_port()
    subprocess.run(
        [sys.executable, str(MANAGE), "demo", "--no-serve"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    server = subprocess.Popen(
        [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the demo server did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def executable(*names: str) -> str:
    """Return the first of ``names`` found on PATH or in /usr/bin, or exit."""
    for name in names:
        path = shutil.which(name) or f"/usr/bin/{name}"
        if os.access(path, os.X_OK):
            return path
    raise SystemExit(
        f"{names[0]} not found: install the Debian packages chromium and "
        "chromium-driver"
    )


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """Start headless Chromium through chromedriver, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = executable("chromium", "chromium-browser")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(
        service=Service(executable_path=executable("chromedriver")), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()


def shoot(driver: Any, base: str, out: Path) -> list[Path]:
    """Log in as the demo user and save one full-height PNG per page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    driver.get(base + "/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys("admin")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "site-name")))
    saved = []
    for name, path, ready in PAGES:
        driver.set_window_size(WIDTH, 900)
        driver.get(base + path)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ready)))
        # Every thumbnail decoded before the picture is taken.
        wait.until(
            lambda d: d.execute_script(
                "return [...document.images].every(i => i.complete)"
            )
        )
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(WIDTH, min(max(int(height), 600), 2400))
        target = out / name
        driver.save_screenshot(str(target))
        saved.append(target)
    return saved


def main(argv: list[str] | None = None) -> None:
    """Seed, serve, photograph, stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="dca-screenshots-") as tmp,
        demo_server(Path(tmp)) as base,
        chromium(Path(tmp) / "profile") as driver,
    ):
        for path in shoot(driver, base, args.out):
            print(f"saved {path}")


if __name__ == "__main__":
    main()
