"""Is a split opening clause heard? Whisper's WER and the seam's gap and spectral jump, split vs unsplit.

A stream's first piece is cut after a few words so that its first audio does not wait for the whole
opening clause (``FIRST_PIECE_PHONEMES``). Each piece is its own model call, so the cut may be heard:
a pause inside the clause, a phrase-final fall, a spectral jump. For every opening clause of
``openers.OPENERS`` long enough to be cut, this renders the clause unsplit (one model call) and split at
each first-piece budget given, and reports:

* WER of Whisper (the configured ``asr_model``, told the language is English: left to detect it, Whisper
  base takes a few of Kokoro's clauses, split or not, for Japanese) against the clause, pooled;
* the silence at each seam (ms below -40 dB of the clip's peak, in 10 ms frames) against the longest
  silence between words of the unsplit clause;
* the spectral jump at each seam: log-spectral distance (dB) between the 20 ms frames either side of the
  seam, against the 95th percentile of that distance between neighbouring frames of the unsplit clause.

    python bench/seam.py --budgets 20 10 --out bench/results/seam.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from openers import OPENERS, words_before_comma

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

FRAME_S = 0.02
SILENCE_DB = -40.0


def frames(x: np.ndarray, sr: int, hop_s: float) -> np.ndarray:
    n = int(FRAME_S * sr)
    hop = int(hop_s * sr)
    count = max(1, 1 + (len(x) - n) // hop)
    return np.stack([x[i * hop : i * hop + n] for i in range(count)])


def log_spectra(x: np.ndarray, sr: int) -> np.ndarray:
    f = frames(x, sr, FRAME_S) * np.hanning(int(FRAME_S * sr))
    return 20 * np.log10(np.abs(np.fft.rfft(f, axis=1)) + 1e-6)


def lsd(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def silent_mask(x: np.ndarray, sr: int) -> np.ndarray:
    f = frames(x, sr, 0.01)
    rms = np.sqrt(np.mean(f**2, axis=1)) + 1e-9
    return 20 * np.log10(rms / (np.abs(x).max() + 1e-9)) < SILENCE_DB


def gap_at(x: np.ndarray, sr: int, at: int) -> float:
    """Milliseconds of silence around sample ``at`` (0 when the seam is in sound)."""
    mask = silent_mask(x, sr)
    i = min(len(mask) - 1, at // int(0.01 * sr))
    if not mask[i]:
        return 0.0
    lo = hi = i
    while lo > 0 and mask[lo - 1]:
        lo -= 1
    while hi + 1 < len(mask) and mask[hi + 1]:
        hi += 1
    return (hi - lo + 1) * 10.0


def inner_gaps(x: np.ndarray) -> list[float]:
    """Silences (ms) between sounds, leading and trailing silence left out."""
    mask = silent_mask(x, 24_000)
    runs, run, seen = [], 0, False
    for m in mask:
        if m:
            run += 1
        else:
            if seen and run:
                runs.append(run * 10.0)
            run, seen = 0, True
    return runs or [0.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[20, 10])
    parser.add_argument("--limit", type=int, default=14, help="longest clauses first, at most this many")
    parser.add_argument("--voice", default="alpha", help="preset voice that speaks the clauses")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "seam.json")
    args = parser.parse_args()

    import jiwer

    from voxvault.config import Settings
    from voxvault.engines.asr import normalize_text
    from voxvault.engines.whisper import TranscribeOptions
    from voxvault.service import VoxVault

    t_start = time.perf_counter()
    load_start = os.getloadavg()
    vv = VoxVault(
        Settings(data_dir=Path(tempfile.mkdtemp(prefix="vv-seam-")), cache_dir=ROOT / ".cache/models")
    )
    pipeline, voice = vv.pipeline, vv.catalog.resolve(args.voice)
    asr = vv.engines.transcriber()
    sr = pipeline.tts.sample_rate
    clauses = sorted(
        {t.split(",", 1)[0].rstrip(".?!") + "." for t in OPENERS if words_before_comma(t) >= 4},
        key=lambda c: -len(c.split()),
    )[: args.limit]

    settings: list[tuple[str, int | None]] = [("unsplit", None)] + [(f"split@{b}", b) for b in args.budgets]
    refs: dict[str, list[str]] = {name: [] for name, _ in settings}
    hyps: dict[str, list[str]] = {name: [] for name, _ in settings}
    seams: dict[str, list[dict[str, float]]] = {name: [] for name, _ in settings[1:]}
    natural: list[dict[str, float]] = []
    for clause in clauses:
        unsplit_audio = None
        for name, budget in settings:
            prepared = pipeline.prepare(clause, voice, fmt="pcm", first_piece_phonemes=budget)
            chunks = list(pipeline.raw_chunks(prepared))
            audio = np.concatenate(chunks)
            refs[name].append(normalize_text(clause))
            said = asr.recognize(audio, sr, TranscribeOptions(language="en", word_timestamps=False))
            hyps[name].append(normalize_text(" ".join(seg.text for seg in said)) or "<empty>")
            if budget is None:
                unsplit_audio = audio
                spec = log_spectra(audio, sr)
                flux = [lsd(spec[i], spec[i + 1]) for i in range(len(spec) - 1)]
                natural.append(
                    {"max_gap_ms": max(inner_gaps(audio)), "lsd_p95_db": float(np.percentile(flux, 95))}
                )
                continue
            assert unsplit_audio is not None
            at = 0
            n = int(FRAME_S * sr)
            for chunk in chunks[:-1]:
                at += len(chunk)
                if at < n or at + n > len(audio):
                    continue
                seams[name].append(
                    {
                        "gap_ms": gap_at(audio, sr, at),
                        "lsd_db": lsd(
                            log_spectra(audio[at - n : at], sr)[0], log_spectra(audio[at : at + n], sr)[0]
                        ),
                    }
                )
        print(clause[:60], {k: v[-1] for k, v in hyps.items()}, flush=True)

    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "duration_s": round(time.perf_counter() - t_start, 1),
        "load_average": {
            "start": [round(x, 2) for x in load_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        "asr_model": vv.settings.asr_model,
        "voice": args.voice,
        "clauses": len(clauses),
        "wer": {name: round(float(jiwer.wer(refs[name], hyps[name])), 4) for name, _ in settings},
        "unsplit": {
            "inner_gap_max_ms_median": statistics.median(x["max_gap_ms"] for x in natural),
            "neighbour_lsd_p95_db_median": round(statistics.median(x["lsd_p95_db"] for x in natural), 2),
        },
        "seams": {
            name: {
                "count": len(s),
                "gap_ms_median": statistics.median(x["gap_ms"] for x in s) if s else None,
                "gap_ms_max": max(x["gap_ms"] for x in s) if s else None,
                "lsd_db_median": round(statistics.median(x["lsd_db"] for x in s), 2) if s else None,
            }
            for name, s in seams.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
