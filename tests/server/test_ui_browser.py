"""``serve --ui`` in a real headless browser: Debian's chromium with a WAV file as its microphone.

The clip is a spoken command followed by an alarm. The page must show a speech window and a
sound window at the right times, the answer, the action in the audit panel and the watched
alarm; then answer questions about an uploaded clip and a recorded one, and reconnect after its
connection drops.
A screenshot is saved in the test's folder (and under ``$SALMONN_AGENT_TEST_ARTIFACTS`` when it
is set). The brain is scripted (the test is of the page and the server, not of a model):
``tools/ui_screenshot.py`` runs the same page on salmonn-mini.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from devkit import scenes as synth
from devkit.scenes import SceneBuilder
from salmonn_agent.audio import load_audio
from salmonn_agent.server.live import LiveOptions
from salmonn_agent.stream.config import SegmenterConfig

from tests.server.test_live import Brains, StubChat

webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.slow

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "stream"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
TIMEOUT_S = 120.0
"""Generous for a slow 2-core CI, but bounded."""


def page_state(driver: Any) -> dict[str, Any]:
    """What the page shows: windows, answers, audit rows."""
    return driver.execute_script("""
        const rows = (sel) => [...document.querySelectorAll(sel)];
        return {
          windows: rows('#windows .window').map((li) => ({kind: li.dataset.kind,
            start: +li.dataset.start, end: +li.dataset.end, text: li.textContent})),
          answers: rows('#answers li').map((li) => ({text: li.textContent, turn: li.dataset.turn || null})),
          audit: rows('#audit .audit-row').map((li) => ({tool: li.dataset.tool, decision: li.dataset.decision})),
          detections: rows('#detections li').map((li) => li.textContent),
          clip_answers: rows('#clip-answers .clip-answer').map((li) => li.textContent),
          clip_name: document.getElementById('clip-name').textContent,
          status: document.getElementById('status').textContent,
          error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
        };""")


def wait_for(driver: Any, done: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        state = page_state(driver)
        if done(state):
            return state
        time.sleep(0.25)
    raise AssertionError(f"the page did not show {what} in {TIMEOUT_S:g} s; it shows {page_state(driver)}")


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
def test_the_page_hears_a_command_and_a_sound(tmp_path, run_app):
    from selenium.webdriver.chrome.service import Service

    from salmonn_agent.server.app import create_app
    from salmonn_agent.server.settings import ServerSettings

    samples, events = (SceneBuilder(noise_db=-60).silence(1.0).speech(load_audio(SPEECH / "lights.flac"))
                       .silence(1.2).sound(synth.alarm(1.0)).silence(3.0).build())
    clip = tmp_path / "clip.wav"
    sf.write(clip, samples, 16_000, subtype="PCM_16")
    # No AudioSet labels on the windows, so the watch asks the (scripted) brain: what YAMNet's 8-bit
    # scores say of the alarm after the browser's resampling depends on the CPU ("White noise" 0.5
    # on some), and what YAMNet hears is not tested here.
    options = LiveOptions(allow=["add_note"], notes_path=tmp_path / "notes.txt", audit_path=tmp_path / "audit.jsonl",
                          brain=Brains(), segmenter=SegmenterConfig(sound_labels=0))
    server = run_app(create_app(ServerSettings(), StubChat, options))

    chrome = webdriver.ChromeOptions()
    chrome.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={clip}%noloop", "--autoplay-policy=no-user-gesture-required"):
        chrome.add_argument(flag)
    driver = webdriver.Chrome(options=chrome, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(TIMEOUT_S)
        driver.get(server.base + "/")
        wait_for(driver, lambda s: s["status"].startswith("session"), "a live session")
        driver.find_element("id", "watch-targets").send_keys("an alarm, a phone ringing")
        driver.find_element("css selector", "#watch-form button").click()
        driver.find_element("id", "mic").click()
        state = wait_for(driver, lambda s: {"speech", "sound"} <= {w["kind"] for w in s["windows"]}
                         and any(a["turn"] for a in s["answers"]) and s["audit"] and s["detections"],
                         "a speech window, a sound window, an answer, an action and the watched alarm")
        # chat about an uploaded clip
        driver.find_element("id", "clip-file").send_keys(str(clip))
        driver.find_element("id", "question").send_keys("What do you hear?")
        driver.find_element("css selector", "#ask-form button:last-of-type").click()
        wait_for(driver, lambda s: s["clip_answers"], "the answer about the clip")
        # record 5 s from the microphone (encoded as WAV by the page), then ask about it
        driver.find_element("id", "record").click()
        wait_for(driver, lambda s: s["clip_name"].startswith("recorded"), "a recorded clip")
        driver.find_element("css selector", "#ask-form button:last-of-type").click()
        state = wait_for(driver, lambda s: len(s["clip_answers"]) == 2, "the answer about the recording")
        assert state["error"] is None, state
        shot = tmp_path / "ui.png"
        driver.save_screenshot(str(shot))
        if artifacts := os.environ.get("SALMONN_AGENT_TEST_ARTIFACTS"):
            Path(artifacts).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(artifacts) / "ui.png")
        # a dropped connection: the page reconnects by itself, as a new session
        session = state["status"]
        driver.execute_script("live.ws.close()")
        wait_for(driver, lambda s: s["status"].startswith("session") and s["status"] != session, "a new session")
    finally:
        driver.quit()
    speech = next(w for w in state["windows"] if w["kind"] == "speech")
    sound = next(w for w in state["windows"] if w["kind"] == "sound")
    truth = {e.kind: e for e in events}
    # Window bounds include the front-end's pre-roll and hangover: compare the page's times
    # with the windows the same front-end cuts from the same clip.
    from salmonn_agent.stream import ArraySource, Listener

    with Listener(ArraySource(samples)) as listener:
        expected = {w.kind: w for w in listener}
    for shown in (speech, sound):
        assert shown["start"] == pytest.approx(expected[shown["kind"]].start, abs=0.3), state
        assert shown["end"] == pytest.approx(expected[shown["kind"]].end, abs=0.3), state
    assert speech["start"] < truth["speech"].start < speech["end"] < sound["start"] < truth["sound"].start
    assert any("Noted it." in a["text"] for a in state["answers"] if a["turn"])
    assert {"tool": "add_note", "decision": "allowed"} in state["audit"]
    assert "an alarm" in state["detections"][0] or "a phone ringing" in state["detections"][0]
    assert shot.stat().st_size > 10_000
