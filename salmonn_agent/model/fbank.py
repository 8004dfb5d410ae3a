"""Kaldi-compatible log mel filterbank features, in pure torch (CPU or CUDA, no torchaudio).

:func:`kaldi_fbank` reproduces ``torchaudio.compliance.kaldi.fbank`` with its default options,
which is what BEATs was trained on: frames cut with ``snip_edges`` (no padding), no dither,
per-frame DC removal, pre-emphasis 0.97, a Povey window, the power spectrum of an FFT padded to
the next power of two, Kaldi's triangular mel filters (20 Hz to Nyquist, mel = 1127 ln(1 + f/700))
and the natural log floored at float32 epsilon. The computation runs in float32, as torchaudio's.

Written here rather than imported because torchaudio is not a dependency: it is built against
one exact PyTorch release (a second large wheel that must match torch's version and CUDA build)
and BEATs needs only this one function of it. Whisper's own features come from transformers.
"""

from __future__ import annotations

import functools
import math

import torch

from salmonn_agent.errors import AudioError

PREEMPHASIS = 0.97
"""Kaldi's default pre-emphasis coefficient."""

POVEY_EXPONENT = 0.85
"""The Povey window is a symmetric Hann window raised to this power."""

LOW_FREQ_HZ = 20.0
"""Lower edge of the first mel filter (Kaldi's default)."""

_LOG_FLOOR = torch.finfo(torch.float32).eps


def frame_geometry(
    sample_rate: int, frame_length_ms: float, frame_shift_ms: float
) -> tuple[int, int, int]:
    """Return ``(window, shift, fft_size)`` in samples, rounded the way Kaldi and torchaudio do.

    The window and shift are truncated to whole samples; the FFT size is the window rounded up
    to a power of two (512 for 25 ms at 16 kHz).
    """
    window = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    if window < 2 or shift < 1:
        raise ValueError(
            f"Frames of {frame_length_ms} ms every {frame_shift_ms} ms at {sample_rate} Hz "
            "are shorter than two samples; check the sample rate and frame sizes."
        )
    return window, shift, 1 << (window - 1).bit_length()


def num_frames(num_samples: int, window: int, shift: int) -> int:
    """Number of whole frames that fit in ``num_samples`` (Kaldi's ``snip_edges``)."""
    return 0 if num_samples < window else 1 + (num_samples - window) // shift


def mel_scale(freq_hz: torch.Tensor | float) -> torch.Tensor | float:
    """Kaldi's mel scale, ``1127 ln(1 + f / 700)``."""
    if isinstance(freq_hz, torch.Tensor):
        return 1127.0 * torch.log1p(freq_hz / 700.0)
    return 1127.0 * math.log1p(freq_hz / 700.0)


@functools.lru_cache(maxsize=8)
def _mel_filters(
    num_bins: int, fft_size: int, sample_rate: int, low_freq: float, high_freq: float
) -> torch.Tensor:
    """Kaldi's triangular mel filters as a ``[fft_size // 2 + 1, num_bins]`` float64 CPU matrix.

    Do not modify the returned tensor: it is cached.
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(
            f"Mel filters need 0 <= low_freq < high_freq <= {nyquist} Hz; "
            f"got low_freq={low_freq}, high_freq={high_freq}."
        )
    mel_low = float(mel_scale(low_freq))
    mel_delta = (float(mel_scale(high_freq)) - mel_low) / (num_bins + 1)
    left = mel_low + mel_delta * torch.arange(num_bins, dtype=torch.float64)
    center = left + mel_delta
    right = center + mel_delta
    # Kaldi weighs the bins below Nyquist only; the Nyquist bin gets weight zero.
    bin_hz = torch.arange(fft_size // 2, dtype=torch.float64) * (sample_rate / fft_size)
    bin_mel = mel_scale(bin_hz).unsqueeze(1)
    rising = (bin_mel - left) / (center - left)
    falling = (right - bin_mel) / (right - center)
    filters = torch.minimum(rising, falling).clamp_min(0.0)
    return torch.cat([filters, filters.new_zeros(1, num_bins)])


def kaldi_fbank(
    waveform: torch.Tensor,
    sample_rate: int = 16000,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
) -> torch.Tensor:
    """Log mel filterbank energies of ``waveform``, as Kaldi and torchaudio (defaults) compute them.

    ``waveform`` holds samples at ``sample_rate``, already scaled as the caller wants (Kaldi
    expects 16-bit integer range; BEATs multiplies [-1, 1] audio by 2**15 first). A 1-D input
    ``[T]`` gives ``[frames, num_mel_bins]``; a batch ``[B, T]`` gives
    ``[B, frames, num_mel_bins]``, each row framed on its own. The result is float32 on the
    input's device. Audio shorter than one frame raises :class:`AudioError`.
    """
    if waveform.dim() not in (1, 2):
        raise AudioError(
            "kaldi_fbank takes a waveform [T] or a batch [B, T]; "
            f"got shape {tuple(waveform.shape)}."
        )
    window, shift, fft_size = frame_geometry(sample_rate, frame_length_ms, frame_shift_ms)
    if waveform.size(-1) < window:
        raise AudioError(
            f"The audio has {waveform.size(-1)} samples, fewer than one {frame_length_ms} ms "
            f"frame ({window} samples at {sample_rate} Hz); pad it or pass longer audio."
        )
    frames = waveform.to(torch.float32).unfold(-1, window, shift)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    # Kaldi's pre-emphasis treats the first sample as its own predecessor.
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - PREEMPHASIS * previous
    povey = torch.hann_window(
        window, periodic=False, dtype=torch.float32, device=frames.device
    ).pow(POVEY_EXPONENT)
    power = torch.fft.rfft(frames * povey, n=fft_size).abs().pow(2.0)
    filters = _mel_filters(num_mel_bins, fft_size, sample_rate, LOW_FREQ_HZ, 0.0)
    energies = power @ filters.to(device=power.device, dtype=torch.float32)
    return energies.clamp_min(_LOG_FLOOR).log()
