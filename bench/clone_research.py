"""Issue 22 research round 1: signal-level matches after the vocoder that no speaker encoder is fitted to.

For each clip (enrol on the first 60 %, judge on the rest, as ``voxvault eval clone``), the shipped instant
clone and variants of it speak the two held-out sentences; GE2E and CAM++ judge each. The variants are fitted
at enrollment from the enrolment speech (at 16 kHz, as the cloner reads it) and the clone speaking a fixed
sentence that is not a held-out one (``REFERENCE_TEXT``):

- ``eq<oct>_<strength>``: the LTAS equaliser (``spectral_match.Equalizer``), smoothing 1/<oct> octave;
- ``warp``: the formant ratio estimated from the LTAS (``spectral_match.formant_ratio``), applied by
  ``cloning/formant.speak``; ``warp<r>``: a fixed ratio (a diagnostic);
- ``sel_<encoder>``: the ratio of ``formant.GRID`` that the encoder hears nearest the enrolment, on the
  probe sentence, or with ``--probe-sentences 3`` (round 2) on it and two of ``VALIDATION_SENTENCES`` spoken
  one after another and embedded as one utterance (neither held out);
- ``warp_eq``: the warp, then the equaliser fitted on the warped clone.

    python bench/clone_research.py --data ../shared/testdata/speakers --out bench/results/research1_test.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from spectral_match import Equalizer, formant_ratio

from voxvault.audio.io import decode
from voxvault.cloning import formant
from voxvault.cloning.adapt.decoder import VALIDATION_SENTENCES
from voxvault.cloning.conditioning import REFERENCE_TEXT
from voxvault.cloning.evaluation import (
    CloneEvalOptions,
    CloneEvaluator,
    Target,
    f0_stats,
    speaker_clips,
    summarise_judges,
)
from voxvault.cloning.instant import StyleMap, instant_style
from voxvault.cloning.pitch import median_f0
from voxvault.engines.base import FloatArray
from voxvault.engines.speaker import join_sentences, unit

ROOT = Path(__file__).resolve().parents[1]
#: formant ratios tried at enrollment by the ``sel_<judge>`` variants
GRID = formant.GRID
Speak = Callable[[str, FloatArray], FloatArray]


def equalized(eq: Equalizer, source: Speak, rate: int, phonemes: str, pack: FloatArray) -> FloatArray:
    return eq.apply(source(phonemes, pack), rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/testdata/speakers")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", default="base,eq6_1,eq3_1,eq6_05,warp,warp_eq6_1")
    parser.add_argument("--limit", type=int, default=0, help="first N speakers only")
    parser.add_argument(
        "--audio-dir", type=Path, help="write AUD/<speaker>/<variant>.wav (rejudge WER later)"
    )
    parser.add_argument("--skip", default="", help="speakers to leave out (comma-separated)")
    parser.add_argument(
        "--probe-sentences", type=int, default=1, help="sentences the sel_ variants choose on (1-5)"
    )
    args = parser.parse_args()
    variants = args.variants.split(",")

    import soxr

    from voxvault.config import Settings
    from voxvault.engines.campp import CamppEncoder
    from voxvault.engines.registry import EngineRegistry

    engines = EngineRegistry(Settings().prepare())
    options = CloneEvalOptions(finetune=False, variants=False, audio_dir=args.audio_dir)
    ev = CloneEvaluator(
        engines.tts(),
        engines.speaker(),
        engines.asr(),
        StyleMap.load(),
        options,
        judges=[CamppEncoder(device=engines.settings.device)],
    )
    assert ev.instant_decoder is not None
    tts, rate = ev.tts, ev.tts.sample_rate
    probe_phonemes = ev._frontend.phonemes(REFERENCE_TEXT)
    choice_phonemes = [
        ev._frontend.phonemes(t) for t in (REFERENCE_TEXT, *VALIDATION_SENTENCES)[: args.probe_sentences]
    ]
    clips = {p.stem: decode(p, max_bytes=50_000_000, max_seconds=120.0) for p in speaker_clips(args.data)}
    speaker_set: dict[str, dict[str, FloatArray]] = {name: {} for name in ev.judges}
    for name, d in clips.items():
        for judge, e in ev.held_out_references(d.samples, d.sample_rate).items():
            speaker_set[judge][name] = e
    # every clip stays in the set each clone is compared with; only the evaluated ones are cut
    clips = {n: d for n, d in clips.items() if n not in args.skip.split(",")}
    if args.limit:
        clips = dict(list(clips.items())[: args.limit])
    rows: list[dict[str, Any]] = []
    loads = [os.getloadavg()[0]]
    t_start = time.perf_counter()
    for name, d in clips.items():
        audio, arate = d.samples, d.sample_rate
        cut = int(len(audio) * options.enrol_share)
        enrol = audio[:cut]
        enrol16 = soxr.resample(np.asarray(enrol, np.float32), arate, 16_000) if arate != 16_000 else enrol
        enrol_emb = unit(ev.encoder.embed(enrol, arate))
        target = Target(name, {j: speaker_set[j][name] for j in ev.judges}, speaker_set)
        real_f0 = f0_stats(audio, arate)
        own = {
            j: ev._verdict(j, enrol_emb if j == ev.encoder.name else unit(enc.embed(enrol, arate)), target)
            for j, enc in ev.judges.items()
        }
        row: dict[str, Any] = {"speaker": name, "own": own}
        pack, _ = instant_style(ev.basis, ev.style_map, enrol_emb, enrol, arate)
        deltas = ev.instant_decoder.deltas(pack, enrol_emb, median_f0(enrol, arate))
        base = functools.partial(formant.speak, tts, deltas=deltas, ratio=1.0)

        def at_ratio(r: float, deltas: dict[str, Any] = deltas) -> Speak:
            return functools.partial(formant.speak, tts, deltas=deltas, ratio=r)

        t0 = time.perf_counter()
        probe = base(probe_phonemes, pack)
        probe_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ratio = formant_ratio(enrol16, 16_000, probe, rate)
        ratio_s = time.perf_counter() - t0
        row["formant_ratio"], row["probe_s"], row["ratio_fit_s"] = ratio, round(probe_s, 3), round(ratio_s, 3)
        warped = at_ratio(ratio)

        if any(v.startswith("sel_") for v in variants):
            # the formant ratio chosen at enrollment: the clone speaks the probe sentence at each ratio of
            # GRID and one encoder picks the ratio nearest the enrolment (the other one is then the judge)
            pickers = {v.removeprefix("sel_") for v in variants if v.startswith("sel_")}
            enrol_by = {j: unit(ev.judges[j].embed(enrol, arate)) for j in pickers}
            sel: dict[str, dict[str, float]] = {}
            t0 = time.perf_counter()
            for r in GRID:
                speak_r = at_ratio(r)
                heard = join_sentences([speak_r(p, pack) for p in choice_phonemes], rate)
                sel[f"{r:.2f}"] = {
                    j: round(float(unit(ev.judges[j].embed(heard, rate)) @ enrol_by[j]), 4) for j in pickers
                }
            row["ratio_scores"], row["ratio_scores_s"] = sel, round(time.perf_counter() - t0, 2)
            row["probe_sentences"] = len(choice_phonemes)

        for variant in variants:
            t0 = time.perf_counter()
            speak: Speak
            if variant == "base":
                speak = base
            elif variant.startswith("sel_"):
                by = variant.removeprefix("sel_")
                chosen = float(max(sel, key=lambda k: sel[k][by]))
                row[f"ratio_{by}"] = chosen
                speak = at_ratio(chosen)
            elif variant == "warp":
                speak = warped
            elif variant.startswith("warp") and not variant.startswith("warp_"):
                # a fixed formant ratio: a diagnostic of how much each judge hears vocal-tract length
                speak = at_ratio(float(variant.removeprefix("warp")))
            else:
                source = warped if variant.startswith("warp_") else base
                spec = variant.removeprefix("warp_").removeprefix("eq")
                octs, strength = spec.split("_")
                clone_probe = probe if source is base else warped(probe_phonemes, pack)
                eq = Equalizer.fit(
                    enrol16,
                    16_000,
                    clone_probe,
                    rate,
                    octaves=1.0 / float(octs),
                    strength=float(strength.replace("05", "0.5")),
                )

                speak = functools.partial(equalized, eq, source, rate)

                row.setdefault("eq_gains_db", {})[variant] = [round(float(g), 2) for g in eq.gains_db]
            fit_s = time.perf_counter() - t0
            row[variant] = ev.judge(pack, target, real_f0, speak=speak, save_as=variant)
            row[variant]["fit_s"] = round(fit_s, 3)
        loads.append(os.getloadavg()[0])
        rows.append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".partial.json").write_text(json.dumps(rows, indent=1))
        print(
            name,
            f"ratio={ratio:.2f}",
            f"sel={row.get('ratio_ge2e')}/{row.get('ratio_campp')}",
            " | ".join(
                f"{v}: campp {row[v]['judges']['campp']['secs']:.3f}"
                f" ge2e {row[v]['judges']['ge2e']['secs']:.3f} wer {row[v]['wer']:.2f}"
                for v in variants
            ),
            flush=True,
        )
    summary = {"own": summarise_judges(rows, "own")}
    for v in variants:
        summary[v] = {
            "judges": summarise_judges(rows, v),
            "wer_mean": round(float(np.mean([r[v]["wer"] for r in rows])), 4),
        }
    report = {
        "speakers": rows,
        "summary": summary,
        "asr": engines.settings.asr_engine,
        "load_average_1m": [round(x, 2) for x in loads],
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "data": str(args.data),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for v in ("own", *variants):
        j = summary[v]["judges"] if v != "own" else summary["own"]
        print(
            f"{v:12s}",
            "  ".join(
                f"{k} {j[k]['secs_mean']:.3f} acc {j[k]['accept_rate']} closest {j[k]['closest_rate']}"
                for k in ("campp", "ge2e")
            ),
            "" if v == "own" else f"wer {summary[v]['wer_mean']:.3f}",
        )


if __name__ == "__main__":
    main()
