"""Test tones: write a sine WAV, and tell which frequency a recorded WAV carries.

``dominant_frequency`` skips leading silence (calls take a moment before audio flows), then takes a
Hann-windowed FFT of the rest; ``has_tone`` says whether a given frequency dominates. Recordings from
baresip's ``sndfile`` and aiortc's recorder are mono or stereo 16-bit PCM at 8 or 48 kHz: all handled.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

SILENCE_RMS = 200.0
"""RMS (16-bit scale) under which a 20 ms block counts as silence (PCMU/Opus noise is far below)."""


def write_tone_wav(
    path: Path, frequency: float, seconds: float = 10.0, rate: int = 8000, amplitude: float = 0.3
) -> Path:
    """Write a mono 16-bit sine WAV at ``rate`` (8000 or 48000 Hz)."""
    if rate not in (8000, 16000, 48000):
        raise ValueError(f"unsupported rate {rate}")
    n = int(seconds * rate)
    t = np.arange(n) / rate
    samples = (amplitude * 32767 * np.sin(2 * math.pi * frequency * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def read_wav(path: Path) -> tuple[npt.NDArray[np.float64], int]:
    """Samples as float (first channel), and the sample rate."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM is supported")
        channels = wav.getnchannels()
        rate = wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    data = np.frombuffer(raw, dtype="<i2").astype(np.float64)
    if channels > 1:
        data = data[: len(data) - len(data) % channels].reshape(-1, channels)[:, 0]
    return data, rate


def _strip_leading_silence(data: npt.NDArray[np.float64], rate: int) -> npt.NDArray[np.float64]:
    block = max(1, rate // 50)
    for start in range(0, len(data) - block + 1, block):
        if math.sqrt(float(np.mean(data[start : start + block] ** 2))) > SILENCE_RMS:
            return data[start:]
    return data[:0]


def audible_seconds(path: Path) -> float:
    """How long the recording lasts after its leading silence."""
    data, rate = read_wav(path)
    return len(_strip_leading_silence(data, rate)) / rate


def dominant_frequency(path: Path, max_seconds: float = 4.0) -> float | None:
    """The strongest frequency after leading silence (first ``max_seconds``), or None if all silent."""
    data, rate = read_wav(path)
    audio = _strip_leading_silence(data, rate)
    # Skip 100 ms after onset: jitter buffers and codec start-up make the first packets ragged.
    audio = audio[rate // 10 : rate // 10 + int(max_seconds * rate)]
    if len(audio) < rate // 10:
        return None
    window = np.hanning(len(audio))
    spectrum = np.abs(np.fft.rfft((audio - audio.mean()) * window))
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    spectrum[freqs < 50] = 0  # DC and hum are not tones
    return float(freqs[int(np.argmax(spectrum))])


def has_tone(path: Path, frequency: float, tolerance: float = 20.0, min_seconds: float = 0.5) -> bool:
    """True when ``frequency`` (within ``tolerance`` Hz) dominates at least ``min_seconds`` of audio."""
    if audible_seconds(path) < min_seconds:
        return False
    found = dominant_frequency(path)
    return found is not None and abs(found - frequency) <= tolerance


def describe(path: Path) -> str:
    """One line for assertion messages: size, audible length, dominant frequency."""
    if not path.exists():
        return f"{path}: missing"
    return (
        f"{path.name}: {path.stat().st_size} bytes, {audible_seconds(path):.2f}s audible, "
        f"dominant {dominant_frequency(path)} Hz"
    )
