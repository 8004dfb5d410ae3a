"""Speaking back: the assistant's answer said aloud, sentence by sentence, as its text streams in.

    speaker = Speaker(load_tts())               # hibari-tts, else espeak-ng
    speaker.start()                             # opens the sound device (sounddevice)
    answer = speaker.answer()
    answer.say("Sure. I set a timer ")          # streamed text pieces, any split
    answer.say("for five minutes.")
    answer.finish()
    await answer.wait()                         # True: all of it was played; False: stopped
    speaker.close()

**Engines.** :class:`HibariTTS` (the default) is the ``hibari-tts`` package: an ONNX voice that
ships inside the wheel, so nothing is downloaded (only its bundled voice is used). Without it,
:class:`EspeakTTS` runs the ``espeak-ng`` program as a separate process. :func:`load_tts`
picks one and names what to install when neither is there.

**Streaming.** A :class:`SentenceSplitter` cuts the text pieces into sentences (and long
sentences at a comma) as soon as their end is seen; one worker thread synthesizes them in
order, so the first sentence plays while the model still writes the next one.

**Playback** runs in the output callback (the sound device's thread, or a thread of
:class:`NullOutput` / :class:`WavOutput`): it copies queued audio out, stamps the first sample
of each answer (``first_audio_at``, ``time.perf_counter``), and writes every block it hands
out, silence included, into a :class:`PlaybackReference` at 16 kHz with its time, so that the
echo gate (:mod:`salmonn_agent.agent.echo`) can tell the assistant's own voice in the
microphone from a person. :meth:`Speaker.interrupt` (barge-in) empties the queue: the next
block out is silence.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import queue
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from salmonn_agent.agent.policy import ActionOutcome
from salmonn_agent.audio import SAMPLE_RATE, resample
from salmonn_agent.errors import ConfigError, SalmonnError

logger = logging.getLogger(__name__)

TTS_INSTALL_HINT = (
    'install a text-to-speech engine: `pip install "salmonn-agent[speak]"` (hibari-tts, whose '
    "voice ships in the package) or the espeak-ng program (`apt-get install espeak-ng`)"
)


class SpeechOutputError(SalmonnError):
    """The speech output cannot be opened or used (no engine, no sound device...)."""


# --------------------------------------------------------------------------- engines


class TTSEngine(Protocol):
    """Text to mono float32 samples at ``sample_rate``."""

    name: str
    sample_rate: int

    def synthesize(self, text: str) -> np.ndarray:
        """The samples of ``text`` said aloud."""
        ...


class HibariTTS:
    """hibari-tts's bundled American English voice (``heart``), through onnxruntime.

    Only the voice inside the wheel is used, so it never downloads. ``speed``: 0.5-2.0.
    """

    name = "hibari"

    def __init__(self, *, speed: float = 1.0, threads: int = 1) -> None:
        try:
            from hibari import Hibari
            from hibari.voices import voice_path
        except ImportError:
            raise SpeechOutputError(f"hibari-tts is not installed: {TTS_INSTALL_HINT}.") from None
        if not 0.5 <= speed <= 2.0:
            raise ConfigError(f"The speech speed must be between 0.5 and 2.0, got {speed}.")
        self.speed = speed
        self._tts = Hibari(model=voice_path("heart", download_missing=False), threads=threads)
        self.sample_rate = int(self._tts.sample_rate)
        self._lock = threading.Lock()

    def synthesize(self, text: str) -> np.ndarray:
        """``text`` said by the bundled voice (the same samples every time: a fixed seed)."""
        with self._lock:
            audio = self._tts(text, speed=self.speed, seed=0)
        return np.asarray(audio, dtype=np.float32).reshape(-1)


class EspeakTTS:
    """The ``espeak-ng`` program, run once per sentence (a separate process, not a library)."""

    name = "espeak-ng"

    def __init__(self, *, voice: str = "en-us", words_per_minute: int = 175, executable: str | None = None) -> None:
        found = executable or shutil.which("espeak-ng")
        if found is None:
            raise SpeechOutputError(f"espeak-ng was not found: {TTS_INSTALL_HINT}.")
        self.executable = found
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.sample_rate = 22_050  # espeak-ng's output rate; checked against each WAV header

    def synthesize(self, text: str) -> np.ndarray:
        """``text`` said by espeak-ng (its WAV output read from stdout)."""
        import soundfile as sf

        done = subprocess.run(
            [self.executable, "-v", self.voice, "-s", str(self.words_per_minute), "--stdout", "--", text],
            capture_output=True, timeout=30, check=False,
        )
        if done.returncode != 0 or not done.stdout:
            raise SpeechOutputError(f"espeak-ng failed: {done.stderr.decode(errors='replace').strip()}")
        samples, rate = sf.read(io.BytesIO(done.stdout), dtype="float32", always_2d=False)
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        return samples if rate == self.sample_rate else resample(samples, rate, self.sample_rate)


TTSName = Literal["auto", "hibari", "espeak-ng"]


def load_tts(name: TTSName | str = "auto", *, speed: float = 1.0) -> TTSEngine:
    """A TTS engine: ``hibari``, ``espeak-ng``, or ``auto`` (hibari-tts, else espeak-ng).

    Raises :class:`SpeechOutputError` naming what to install when none is available.
    """
    if name == "hibari":
        return HibariTTS(speed=speed)
    if name == "espeak-ng":
        return EspeakTTS(words_per_minute=round(175 * speed))
    if name != "auto":
        raise ConfigError(f"Unknown TTS engine {name!r}: use auto, hibari or espeak-ng.")
    try:
        return HibariTTS(speed=speed)
    except SpeechOutputError:
        pass
    try:
        return EspeakTTS(words_per_minute=round(175 * speed))
    except SpeechOutputError:
        raise SpeechOutputError(f"No text-to-speech engine is available: {TTS_INSTALL_HINT}.") from None


def action_report(outcomes: Sequence[ActionOutcome], limit: int = 300) -> str:
    """What to say after a turn that ran actions and answered nothing: each action's output
    (``Saved note 3.``, the notes read back...), or that it was refused or failed."""
    said = []
    for outcome in outcomes:
        name = outcome.tool.replace("_", " ")
        if not outcome.allowed:
            said.append("Sorry, I did not catch that." if outcome.code == "not_heard" else f"I may not {name}.")
        elif outcome.error is not None:
            said.append(f"{name.capitalize()} failed.")
        elif outcome.output:
            text = " ".join(outcome.output.split("\n"))
            said.append(text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + ".")
    return "\n".join(said)


# --------------------------------------------------------------------------- sentences

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc e.g i.e a.m p.m approx no fig mt ft".split()
)
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n+")
_CLAUSE = re.compile(r"[,;:—]+(?=\s)")


class SentenceSplitter:
    """Cuts streamed text into sentences as soon as each one's end is seen.

    A sentence ends at ``.``, ``!``, ``?`` or ``…`` followed by white space (not after a known
    abbreviation or a single initial), or at a line break. A sentence already ``clause_words``
    words long is also cut at a comma, semicolon, colon or dash, so that a long first sentence
    does not hold back the first audio.
    """

    def __init__(self, *, clause_words: int | None = 8) -> None:
        self.clause_words = clause_words
        self._buffer = ""

    def feed(self, piece: str) -> list[str]:
        """Add a piece of text; returns the sentences it completed."""
        self._buffer += piece
        out: list[str] = []
        while True:
            cut = self._next_cut()
            if cut is None:
                return out
            sentence, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if _speakable(sentence):
                out.append(sentence)

    def flush(self) -> list[str]:
        """The rest of the text (the answer ended)."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if _speakable(rest) else []

    def _next_cut(self) -> int | None:
        text = self._buffer
        for match in _END.finditer(text):
            if match.group().startswith("\n") or not _after_abbreviation(text, match.start()):
                return match.end()
        if self.clause_words is not None:
            for match in _CLAUSE.finditer(text):
                if len(text[: match.start()].split()) >= self.clause_words:
                    return match.end()
        return None


def _after_abbreviation(text: str, dot: int) -> bool:
    if text[dot] != ".":
        return False
    word = text[:dot].rsplit(None, 1)[-1].lstrip("(\"'“‘").lower() if text[:dot].strip() else ""
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


# --------------------------------------------------------------------------- reference


class PlaybackReference:
    """What the speaker handed to the sound device, at 16 kHz, with the time it was heard.

    Written by the output callback (one block at a time, silence included), read by the echo
    gate. Times are ``clock`` seconds (``time.monotonic`` by default, or any timebase both
    sides agree on). The block times are fitted to one line, sample ``k`` heard at
    ``offset + k / 16000``, ``offset`` being the earliest any block was stamped (a late
    callback only delays its stamp), allowed to grow by 100 ppm of clock drift.
    """

    DRIFT = 1e-4

    def __init__(self, seconds: float = 20.0) -> None:
        self._buffer = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
        self._written = 0
        self._offset: float | None = None
        self._offset_at = 0.0
        self._last_sound: float | None = None
        self._lock = threading.Lock()

    @property
    def written(self) -> int:
        """Samples written so far."""
        return self._written

    def write(self, samples: np.ndarray, at: float) -> None:
        """Append ``samples`` (16 kHz), whose first one is heard at time ``at``."""
        samples = np.asarray(samples, dtype=np.float32)
        n, size = samples.size, self._buffer.size
        with self._lock:
            candidate = at - self._written / SAMPLE_RATE
            if self._offset is None:
                self._offset = candidate
            else:
                grown = self._offset + (at - self._offset_at) * self.DRIFT
                self._offset = min(grown, candidate)
            self._offset_at = at
            if n:
                start = self._written % size
                first = min(n, size - start)
                self._buffer[start : start + first] = samples[-size:][:first] if n > size else samples[:first]
                if n > first:
                    self._buffer[: n - first] = samples[first:]
                if np.any(samples):
                    self._last_sound = self._offset + (self._written + n) / SAMPLE_RATE
            self._written += n

    def last_sound(self) -> float | None:
        """When the latest non-silent sample was heard (None: nothing yet)."""
        return self._last_sound

    @property
    def offset(self) -> float | None:
        """The time of sample 0 (None until the first write)."""
        return self._offset

    def read(self, start: float, n: int) -> np.ndarray:
        """``n`` samples from time ``start`` (zeros where nothing was played or kept)."""
        if self._offset is None:
            return np.zeros(max(n, 0), dtype=np.float32)
        return self.read_samples(int(round((start - self._offset) * SAMPLE_RATE)), n)

    def read_samples(self, first: int, n: int) -> np.ndarray:
        """``n`` samples from sample ``first`` (zeros where nothing was played or kept)."""
        out = np.zeros(max(n, 0), dtype=np.float32)
        with self._lock:
            if n <= 0:
                return out
            lo, hi = max(first, self._written - self._buffer.size, 0), min(first + n, self._written)
            if hi <= lo:
                return out
            size = self._buffer.size
            idx = np.arange(lo, hi) % size
            out[lo - first : hi - first] = self._buffer[idx]
        return out


# --------------------------------------------------------------------------- answers


class SpokenAnswer:
    """One answer being said: text goes in with :meth:`say`, audio comes out of the speaker."""

    def __init__(self, speaker: Speaker, number: int) -> None:
        self._speaker = speaker
        self.number = number
        self._splitter = SentenceSplitter(clause_words=speaker.clause_words)
        self._done: concurrent.futures.Future[bool] = concurrent.futures.Future()
        self.first_audio_at: float | None = None
        """``time.perf_counter()`` when its first sample was handed to the sound device."""
        self.finished = False
        self.stopped = False
        self.sentences: list[str] = []
        """The sentences sent to the engine, in order."""

    def say(self, text: str) -> None:
        """Add streamed text; each completed sentence is synthesized and played in turn."""
        if self.finished or self.stopped:
            return
        for sentence in self._splitter.feed(text):
            self._queue(sentence)

    def finish(self) -> None:
        """No more text: say the rest, then :meth:`wait` resolves once everything was played."""
        if self.finished:
            return
        self.finished = True
        if not self.stopped:
            for sentence in self._splitter.flush():
                self._queue(sentence)
        self._speaker._submit(self, None)

    def stop(self) -> None:
        """Barge-in: stop this answer now (queued text and audio are dropped)."""
        self._speaker._stop_answer(self)

    async def wait(self) -> bool:
        """Until the answer is played (True) or stopped (False)."""
        return await asyncio.wrap_future(self._done)

    @property
    def done(self) -> bool:
        """Played to the end or stopped."""
        return self._done.done()

    def _queue(self, sentence: str) -> None:
        self.sentences.append(sentence)
        self._speaker._submit(self, sentence)

    def _resolve(self, played: bool) -> None:
        if not self._done.done():
            self._done.set_result(played)


@dataclass
class _Clip:
    answer: SpokenAnswer
    audio: np.ndarray | None
    """Device-rate samples (None: the answer's end)."""
    ref: np.ndarray | None
    """The same audio at 16 kHz."""
    pos: int = 0


# --------------------------------------------------------------------------- outputs


OutputCallback = Callable[[np.ndarray], None]
"""Fills a block (1-D float32, device rate) with the next samples to play."""


class AudioOutput(Protocol):
    """Where the speaker's audio goes: calls the callback for every block it plays."""

    sample_rate: int
    latency_s: float
    """How long after its callback a block is heard (as the device reports it)."""

    def open(self, callback: OutputCallback, block: int) -> None:
        """Start calling ``callback`` with blocks of ``block`` samples."""
        ...

    def close(self) -> None:
        """Stop; no callback runs after this returns."""
        ...


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as err:
        raise SpeechOutputError(
            f"Speaking needs the PortAudio library ({err}): install it (Debian/Ubuntu: "
            "`apt-get install libportaudio2`), or write the answers to a file with --speak-wav PATH."
        ) from None
    except ImportError:
        raise SpeechOutputError("Speaking needs the sounddevice package: `pip install sounddevice`.") from None
    return sounddevice


class DeviceOutput:
    """A sounddevice ``OutputStream`` (``device``: index, part of a name, or None for the default)."""

    def __init__(self, device: int | str | None = None, *, preferred_rate: int = 24_000) -> None:
        self.device = device
        self._stream: Any = None
        sd = _sounddevice()
        try:
            info = sd.query_devices(_device_arg(device), "output")
        except Exception as err:  # ValueError / PortAudioError: no such device, no output at all
            raise SpeechOutputError(
                f"No audio output device {'matches ' + repr(device) if device is not None else 'found'} ({err}): "
                "list the devices with `python -m sounddevice`, or write the answers to a file with --speak-wav PATH."
            ) from None
        self.name = str(info.get("name", "output"))
        self._index = _device_arg(device)
        self.sample_rate = preferred_rate
        try:
            sd.check_output_settings(device=self._index, channels=1, dtype="float32", samplerate=preferred_rate)
        except Exception:
            self.sample_rate = int(info.get("default_samplerate") or 48_000)
        self.latency_s = 0.0

    def open(self, callback: OutputCallback, block: int) -> None:
        """Open the stream and start playing (silence until there is audio)."""
        sd = _sounddevice()

        def fill(outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            callback(outdata[:, 0])

        try:
            stream = sd.OutputStream(device=self._index, channels=1, samplerate=self.sample_rate,
                                     blocksize=block, dtype="float32", latency="low", callback=fill)
            stream.start()
        except Exception as err:
            raise SpeechOutputError(f"Could not open the audio output {self.name!r}: {err}.") from None
        self._stream = stream
        latency = getattr(stream, "latency", 0.0)
        self.latency_s = float(latency if isinstance(latency, (int, float)) else 0.0)

    def close(self) -> None:
        """Stop and close the stream."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()


def _device_arg(device: int | str | None) -> int | str | None:
    if isinstance(device, str) and device.strip().isdigit():
        return int(device)
    return device


class NullOutput:
    """Plays nowhere, at the pace of a sound device (``realtime``) or as fast as audio comes.

    For benchmarks and machines without speakers. ``sink`` receives every block that held
    audio (silent blocks only while ``realtime``).
    """

    def __init__(self, sample_rate: int = 24_000, *, realtime: bool = True,
                 sink: Callable[[np.ndarray], None] | None = None) -> None:
        self.sample_rate = sample_rate
        self.realtime = realtime
        self.sink = sink
        self.latency_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.has_audio: Callable[[], bool] = lambda: True
        self.wake = threading.Event()

    def open(self, callback: OutputCallback, block: int) -> None:
        """Start the playing thread."""

        def run() -> None:
            buf = np.zeros(block, dtype=np.float32)
            period = block / self.sample_rate
            due = time.monotonic()
            while not self._stop.is_set():
                if self.realtime:
                    due += period
                    delay = due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                    if delay < -0.5:  # fell far behind (a stalled machine): do not catch up in a burst
                        due = time.monotonic()
                elif not self.has_audio():
                    self.wake.wait(0.05)
                    self.wake.clear()
                    continue
                callback(buf)
                if self.sink is not None and (self.realtime or np.any(buf)):
                    self.sink(buf.copy())

        self._thread = threading.Thread(target=run, name="salmonn-null-output", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the playing thread."""
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


class WavOutput(NullOutput):
    """Writes what the speaker says into a WAV file instead of a sound device (not paced)."""

    def __init__(self, path: str | Path, sample_rate: int = 24_000) -> None:
        import soundfile as sf

        self.path = Path(path)
        try:
            self._file = sf.SoundFile(self.path, "w", samplerate=sample_rate, channels=1, subtype="PCM_16")
        except Exception as err:  # a missing folder, no permission...
            raise SpeechOutputError(f"Cannot write {self.path}: {err}") from None
        super().__init__(sample_rate, realtime=False, sink=self._file.write)

    def close(self) -> None:
        """Stop and close the file."""
        super().close()
        self._file.close()


# --------------------------------------------------------------------------- speaker


class Speaker:
    """Says answers through an :class:`AudioOutput` (default: the sound device) with an engine.

    ``block_ms``: the output block (the most a barge-in waits for silence, on top of the
    device's own latency). ``clock``: the time base of :attr:`reference` (the echo gate's).
    """

    def __init__(
        self,
        engine: TTSEngine,
        *,
        output: AudioOutput | None = None,
        device: int | str | None = None,
        block_ms: int = 20,
        clause_words: int | None = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if block_ms <= 0:
            raise ConfigError(f"block_ms must be positive, got {block_ms}.")
        self.engine = engine
        self.output = output if output is not None else DeviceOutput(device, preferred_rate=engine.sample_rate)
        self.rate = int(self.output.sample_rate)
        self.block = max(1, self.rate * block_ms // 1000)
        self.clause_words = clause_words
        self.clock = clock
        self.reference = PlaybackReference()
        self._jobs: queue.Queue[tuple[SpokenAnswer, str | None] | None] = queue.Queue()
        self._clips: deque[_Clip] = deque()
        self._lock = threading.Lock()
        self._answers = 0
        self._live: list[SpokenAnswer] = []
        self._ref_frac = 0.0
        self._worker: threading.Thread | None = None
        self._started = False
        self.interruptions = 0
        """Times :meth:`interrupt` stopped audio that was playing or queued."""
        if isinstance(self.output, NullOutput):
            self.output.has_audio = lambda: bool(self._clips)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Speaker:
        """Open the output and start the synthesis thread (idempotent)."""
        if self._started:
            return self
        self._worker = threading.Thread(target=self._synthesize_loop, name="salmonn-tts", daemon=True)
        self._worker.start()
        self.output.open(self._fill, self.block)
        self._started = True
        return self

    def warm_up(self) -> None:
        """Synthesize a word once, so that the first answer does not pay the engine's first run."""
        self.engine.synthesize("Ready.")

    def close(self) -> None:
        """Stop playing, close the output and the synthesis thread (idempotent)."""
        self._stop_all()
        self.output.close()  # also when never started: a WAV file is closed
        if self._started:
            self._jobs.put(None)
            if self._worker is not None:
                self._worker.join(timeout=10.0)
            self._started = False

    def __enter__(self) -> Speaker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- answers

    def answer(self) -> SpokenAnswer:
        """A new answer to say (answers play one after another)."""
        self._answers += 1
        answer = SpokenAnswer(self, self._answers)
        with self._lock:
            self._live = [a for a in self._live if not a.done] + [answer]
        return answer

    def interrupt(self) -> bool:
        """Barge-in: stop every answer not yet played out; True when there was one."""
        stopped = self._stop_all()
        if stopped:
            self.interruptions += 1
        return stopped

    def _stop_all(self) -> bool:
        with self._lock:
            self._clips.clear()
            live, self._live = [a for a in self._live if not a.done], []
        self._drain_jobs()
        for answer in live:
            answer.stopped = True
            answer._resolve(False)
        return bool(live)

    @property
    def playing(self) -> bool:
        """Audio is queued or playing."""
        return bool(self._clips)

    def _stop_answer(self, answer: SpokenAnswer) -> None:
        answer.stopped = True
        with self._lock:
            kept = [c for c in self._clips if c.answer is not answer]
            self._clips.clear()
            self._clips.extend(kept)
        answer._resolve(False)

    def _drain_jobs(self) -> None:
        kept: list[tuple[SpokenAnswer, str | None] | None] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                kept.append(job)
        for job in kept:
            self._jobs.put(job)

    def _submit(self, answer: SpokenAnswer, sentence: str | None) -> None:
        if not self._started:
            raise SpeechOutputError("The speaker is not started: call start() first.")
        self._jobs.put((answer, sentence))

    # ---------------------------------------------------------------- threads

    def _synthesize_loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            answer, sentence = job
            if answer.stopped:
                answer._resolve(False)
                continue
            clip = _Clip(answer, None, None)
            if sentence is not None:
                try:
                    audio = self.engine.synthesize(sentence)
                except Exception:  # a sentence the engine cannot say is skipped, the answer goes on
                    logger.exception("the TTS engine failed on %r", sentence)
                    continue
                if not audio.size:
                    continue
                rate = self.engine.sample_rate
                clip.audio = audio if rate == self.rate else resample(audio, rate, self.rate)
                clip.ref = audio if rate == SAMPLE_RATE else resample(audio, rate, SAMPLE_RATE)
            with self._lock:
                if answer.stopped:
                    continue
                self._clips.append(clip)
            if isinstance(self.output, NullOutput):
                self.output.wake.set()

    def _fill(self, out: np.ndarray) -> None:
        # The device's thread: copy, stamp, record; never block for long, never raise.
        n = out.shape[0]
        heard_at = self.clock() + self.output.latency_s
        refs: list[np.ndarray] = []
        filled = 0
        finished: list[SpokenAnswer] = []
        with self._lock:
            while filled < n and self._clips:
                clip = self._clips[0]
                if clip.audio is None:
                    finished.append(clip.answer)
                    self._clips.popleft()
                    continue
                take = min(n - filled, clip.audio.size - clip.pos)
                out[filled : filled + take] = clip.audio[clip.pos : clip.pos + take]
                assert clip.ref is not None
                a = clip.pos * clip.ref.size // clip.audio.size
                b = (clip.pos + take) * clip.ref.size // clip.audio.size
                refs.append(clip.ref[a:b])
                if clip.answer.first_audio_at is None:
                    clip.answer.first_audio_at = time.perf_counter()
                clip.pos += take
                filled += take
                if clip.pos >= clip.audio.size:
                    self._clips.popleft()
        out[filled:] = 0.0
        if filled < n:
            self._ref_frac += (n - filled) * SAMPLE_RATE / self.rate
            gap = int(self._ref_frac)
            self._ref_frac -= gap
            refs.append(np.zeros(gap, dtype=np.float32))
        self.reference.write(np.concatenate(refs) if len(refs) > 1 else refs[0], heard_at)
        for answer in finished:
            answer._resolve(True)
