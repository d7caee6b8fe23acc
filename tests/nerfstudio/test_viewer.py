"""`ns-train frinr-ngp --vis viewer+tensorboard` serves nerfstudio's viewer, and a browser shows our render.

Headless Chromium (Debian's chromium + chromium-driver, installed by .ci/run) renders WebGL through
ANGLE/SwiftShader. The test waits for viser's "Connected" badge and for the viewer's own report of a
rendered frame ("Resolution: W×Hpx" with W, H > 0), then checks the screenshot: the 3D view must hold
an image (bright, not flat), not the dark loading screen with nerfstudio's logo shown before a frame.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
    reason="headless Chromium not installed (apt-get install chromium chromium-driver; CI installs it)",
)
CHROME_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-gl=angle", "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1200,800",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ns-train exited with {process.returncode} before serving the viewer")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"viewer did not open port {port} within {timeout} s")


def view_statistics(screenshot: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the 3D view (below the header, left of the control panel)."""
    view = screenshot[60:, : int(screenshot.shape[1] * 0.7), :3].astype(np.float32)
    return float(view.mean()), float(view.std())


def rendered_resolution(page_text: str) -> tuple[int, int]:
    match = re.search(r"Resolution:\s*(\d+)\D(\d+)px", page_text)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def test_viewer_shows_a_rendered_image(tiny_scene: Path, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    port = free_port()
    command = [
        sys.executable, "-m", "nerfstudio.scripts.train", "frinr-ngp", "--vis", "viewer+tensorboard",
        "--viewer.websocket-host", "127.0.0.1", "--viewer.websocket-port", str(port), "--output-dir", str(tmp_path),
        "--max-num-iterations", "2000", "--pipeline.target-num-samples", "4096",
        "--pipeline.model.grid-resolution", "16", "--pipeline.model.field.log2-hashmap-size", "12",
        "blender-data", "--data", str(tiny_scene),
    ]  # fmt: skip
    log = (tmp_path / "train.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    driver = None
    try:
        wait_for_port(port, process, timeout=240)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.get(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            time.sleep(3)
            text = driver.find_element(By.TAG_NAME, "body").text
            connected, resolution = "Connected" in text, rendered_resolution(text)
            driver.save_screenshot(str(tmp_path / "viewer.png"))
            mean, spread = view_statistics(iio.imread(tmp_path / "viewer.png"))
            if connected and min(resolution) > 0 and mean > 80 and spread > 3:
                break
        shutil.copy(tmp_path / "viewer.png", Path(os.environ.get("FRINR_VIEWER_SHOT", tmp_path / "kept.png")))
        assert connected, "the viewer page never showed viser's Connected badge"
        assert min(resolution) > 0, "the viewer never reported a rendered frame"
        # The loading screen is near black (mean ≈ 20); a frame of the scene is bright and not a flat fill.
        assert mean > 80 and spread > 3, f"no rendered image on screen (mean {mean:.1f}, std {spread:.1f})"
    finally:
        if driver is not None:
            driver.quit()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
