"""ElevenLabs' ``output_format`` (``mp3_44100_128``, ``pcm_24000``, ``ulaw_8000``...): parsed and checked
before a response or a socket starts, so a codec's refusal is a 4xx rather than a broken stream."""

from __future__ import annotations

import re
from dataclasses import dataclass

from voxvault.audio import StreamEncoder
from voxvault.errors import VoxError
from voxvault.synthesis.pipeline import OUTPUT_SAMPLE_RATES

DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"


@dataclass(frozen=True)
class OutputFormat:
    format: str
    sample_rate: int | None
    bitrate: int | None


_OUTPUT_FORMAT = re.compile(r"(pcm|mp3|opus|wav|flac|aac|ulaw|alaw)(?:_(\d+))?(?:_(\d+))?")
# Most an encoder takes for one (mono) channel: libopus refuses more than 256 kbit/s, MPEG audio stops at 320.
_MAX_BITRATE = {"opus": 256_000}
_TELEPHONY = ("ulaw", "alaw")


def parse_output_format(value: str) -> OutputFormat:
    """``pcm_24000``, ``mp3_44100_128``, ``opus_48000_64``, ``wav_24000``, ``ulaw_8000`` (or just ``mp3``).

    Every combination is checked here, before a response starts: the encoder is opened and closed once,
    so nothing it would refuse can fail after the headers went out.
    """
    m = _OUTPUT_FORMAT.fullmatch(value.strip().lower())
    if m is None:
        raise VoxError(
            "unsupported_format",
            f"output_format {value[:40]!r} is not supported; use pcm_<rate>, mp3_<rate>_<kbps>, "
            "opus_48000_<kbps>, wav_<rate>, ulaw_8000 or alaw_8000",
        )
    fmt, rate_s, kbps_s = m.groups()
    rate = int(rate_s) if rate_s else None
    if fmt in _TELEPHONY and rate not in (None, 8000):
        raise VoxError("invalid_sample_rate", f"{fmt} is only available at 8000 Hz ({fmt}_8000)")
    if rate is not None and rate not in OUTPUT_SAMPLE_RATES:
        raise VoxError(
            "invalid_sample_rate",
            f"sample rate {rate} is not one of {', '.join(map(str, OUTPUT_SAMPLE_RATES))}",
        )
    bitrate = int(kbps_s) * 1000 if kbps_s else None
    if bitrate is not None and fmt not in ("mp3", "opus", "aac"):
        raise VoxError("invalid_bitrate", f"{fmt} has no bitrate; use {fmt}_<rate>")
    if bitrate is not None and not 8_000 <= bitrate <= _MAX_BITRATE.get(fmt, 320_000):
        limit = _MAX_BITRATE.get(fmt, 320_000) // 1000
        raise VoxError("invalid_bitrate", f"{fmt} bitrate must be between 8 and {limit} kbit/s")
    out = OutputFormat(fmt, 8000 if fmt in _TELEPHONY else rate, bitrate)
    _check_encoder(out)
    return out


def _check_encoder(out: OutputFormat) -> None:
    """Open and close the encoder once (a few ms): what FFmpeg refuses is a 400 now, not a broken stream."""
    try:
        StreamEncoder(out.format, 24_000, out.sample_rate, bitrate=out.bitrate).close()
    except VoxError:
        raise
    except Exception:  # noqa: BLE001 - FFmpeg's refusal, whatever its type
        raise VoxError(
            "unsupported_format", "this output_format's codec refuses that sample rate and bitrate"
        ) from None
