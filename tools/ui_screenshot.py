"""Screenshot and latency of ``salmonn-agent serve --ui`` with salmonn-mini, in headless chromium.

Starts ``salmonn-agent serve --ui --allow add_note set_timer`` (the README's command, with its
notes and audit in a temporary folder), opens the page in Debian's chromium whose microphone is
a WAV file (an espeak-ng voice saying a note command, then an alarm), sets the sound watch to
"an alarm", starts the microphone, waits until the page shows the speech window, the answer, the
action and the alarm, saves a screenshot (``docs/ui.png`` by default) and prints one JSON object
of what the page showed and when (milliseconds, browser clock, from the end of the speech in the
clip):

* ``window_ms``: the speech window on the page; ``first_token_ms``: the answer's first token;
  ``turn_ms``: the whole turn (answer and action) on the page;
* ``server``: the turn's own metrics (``eou_delay_ms``, ``ttft_ms``, ``turn_ms``), as the
  voice assistant measures them.

Needs espeak-ng, chromium and chromium-driver (apt) and selenium (the ``[test]`` extra).

Usage: python tools/ui_screenshot.py [--out docs/ui.png] [--port 8765] [--text "Set a timer for five minutes."]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # devkit/ sits at the repository root, outside the package
    sys.path.insert(0, str(ROOT))

from devkit import scenes as synth  # noqa: E402
from devkit import sounds as S  # noqa: E402
from devkit.scenes import SceneBuilder  # noqa: E402
from devkit.serving import wait_until_healthy  # noqa: E402

TIMEOUT_S = 300.0


def make_clip(text: str, path: Path) -> float:
    """A spoken command, then an alarm, as a 16 kHz WAV; returns when the speech ends (s)."""
    voice = S.draw_voice(np.random.default_rng(7), held_out=True)
    samples, events = (SceneBuilder(noise_db=-65.0).silence(1.0).speech(S.speak(text, voice)).silence(1.5)
                       .sound(synth.alarm(1.5)).silence(4.0).build())
    sf.write(path, samples, 16_000, subtype="PCM_16")
    return events[0].end


def browser(clip: Path) -> Any:
    """Headless chromium (Debian's) whose microphone plays ``clip`` once."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,820",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={clip}%noloop"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))


def wait_log(driver: Any, done: Any) -> list[dict[str, Any]]:
    """The page's message log once ``done(log)`` holds."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        log = driver.execute_script("return window.salmonnLog")
        if done(log):
            return log
        time.sleep(0.2)
    raise SystemExit(f"the page did not show everything in {TIMEOUT_S:g} s: {json.dumps(log)[:2000]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ui.png")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--text", default="Set a timer for five minutes.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        speech_end = make_clip(args.text, work / "clip.wav")
        server = subprocess.Popen(
            [sys.executable, "-m", "salmonn_agent.cli", "serve", "--ui", "--port", str(args.port),
             "--allow", "add_note", "set_timer", "--notes", str(work / "notes.txt"),
             "--audit", str(work / "audit.jsonl")],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        driver = None
        try:
            base = f"http://127.0.0.1:{args.port}"
            wait_until_healthy(base, TIMEOUT_S, server)
            driver = browser(work / "clip.wav")
            driver.get(base + "/")
            driver.execute_script("window.salmonnLog = []")
            wait_log(driver, lambda log: any(m["type"] == "ready" for m in log))
            driver.find_element("id", "watch-targets").send_keys("an alarm")
            driver.find_element("css selector", "#watch-form button").click()
            driver.find_element("id", "mic").click()
            log = wait_log(driver, lambda log: any(m["type"] == "turn" for m in log)
                           and any(m["type"] == "detection" for m in log))
            time.sleep(0.5)  # let the page draw the last message
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
        finally:
            if driver is not None:
                driver.quit()
            server.terminate()
            server.wait(30)

    def first(message_type: str, **match: Any) -> dict[str, Any]:
        return next(m for m in log if m["type"] == message_type and all(m.get(k) == v for k, v in match.items()))

    # The first frame is sent once it holds 100 ms of audio: the clip started 100 ms earlier.
    said_end = first("first_frame")["at"] - 100.0 + speech_end * 1000.0
    turn = first("turn")
    result = {
        "said": args.text,
        "windows": [{k: m[k] for k in ("kind", "start", "end")} for m in log if m["type"] == "window"],
        "answer": turn["answer"],
        "actions": [{k: a[k] for k in ("tool", "allowed", "reason")} for a in turn["actions"]],
        "detections": [m["target"] for m in log if m["type"] == "detection"],
        "window_ms": round(first("window", kind="speech")["at"] - said_end),
        "first_token_ms": round(first("token")["at"] - said_end) if any(m["type"] == "token" for m in log) else None,
        "turn_ms": round(turn["at"] - said_end),
        "server": {k: turn["metrics"][k] for k in ("eou_delay_ms", "ttft_ms", "turn_ms")},
        "screenshot": str(args.out),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
