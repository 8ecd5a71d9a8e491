"""One-off probes of the clone (session 11, docs/cloning.md "Session 11: measured and not kept").

Each probe changes one thing in the shipped method for the length of one ``bench/clone.py`` run, by
replacing a function, so that what is measured is exactly the shipped code otherwise. None of them ships.

    python bench/clone_probes.py content-offset --clips /tmp/zv/de --out /tmp/content.npz   # ~9 min
    python bench/clone_probes.py eval --probe jacobian-offset --offsets /tmp/content.npz -- --skip-finetune
    python bench/clone_probes.py eval --probe finetune-offset --offsets /tmp/content.npz -- --out x.json
    python bench/clone_probes.py eval --probe trajectory-average -- --out x.json
    python bench/clone_probes.py eval --probe step --step 0.03 -- --skip-finetune

``content-offset``: how much of a GE2E embedding is the sentence said. Each voice (the presets and the
instant styles of the clips in ``--clips``, at their pitch) speaks a sentence set and a 10-sentence pool;
the offset ``e(set) - e(pool)`` is the set's content, and its mean over voices the part every voice shares.
The ``*-offset`` probes move the target of the Jacobian step or of fine-tuning by that shared part
(``unit(t + offset)``): the clone should match the speaker *as heard through those sentences*.
``trajectory-average`` judges, besides the job's weights, averages of its trajectory (stochastic weight
averaging); ``step`` sets the instant decoder step's size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import clone  # bench/clone.py
import numpy as np
from train_clone_embedding_map import speaker_coords
from voxvault.eval import clone as eval_clone

from voxvault.cloning.adapt.decoder import VALIDATION_SENTENCES, choose_runtime
from voxvault.cloning.adapt.state import DEFAULT_SENTENCES
from voxvault.cloning.evaluation import FINETUNE_SENTENCES, HELD_OUT_SENTENCES
from voxvault.cloning.instant import StyleBasis
from voxvault.cloning.pitch import PitchMap
from voxvault.config import Settings
from voxvault.engines.base import AdaptedWeights
from voxvault.engines.onnx_float import PITCH_SCALE
from voxvault.engines.registry import EngineRegistry
from voxvault.engines.speaker import embed_sentences, unit
from voxvault.text import TextFrontend
from voxvault.voices import decoder_adaptation, instant_decoder

POOL = VALIDATION_SENTENCES + (
    "She sells fresh bread and warm pastries every single morning.",
    "The museum will be closed on Monday for a private event.",
    "How many kilometres is it from here to the nearest hospital?",
    "He forgot his umbrella, so he walked home in the pouring rain.",
    "We are sorry, but all our agents are busy at the moment.",
    "The children laughed as the puppy chased its own tail.",
)
SETS = {"ft": FINETUNE_SENTENCES, "job": DEFAULT_SENTENCES, "ho": HELD_OUT_SENTENCES}


def content_offset(clips: Path, out: Path) -> None:
    engines = EngineRegistry(Settings().prepare())
    tts, encoder = engines.tts(), engines.speaker()
    presets = tts.preset_styles()
    basis = StyleBasis.from_presets(presets)
    frontend = TextFrontend(max_phonemes=tts.max_phonemes)
    phonemes = {k: [frontend.phonemes(s) for s in v] for k, v in {**SETS, "pool": POOL}.items()}
    voices = [(presets[n], 1.0) for n in sorted(presets)]
    pitch_map = PitchMap.load()
    for z, _, f0 in speaker_coords(clips, basis, encoder, (1.0,)):
        pack = basis.pack(z)
        voices.append((pack, pitch_map.scale(basis, pack, f0) or 1.0))
    spoken: dict[str, list[np.ndarray]] = {k: [] for k in phonemes}
    t0 = time.perf_counter()
    for i, (pack, factor) in enumerate(voices):
        voice = AdaptedWeights("pitch", {PITCH_SCALE: np.array([factor - 1.0], np.float32)})
        for k, ph in phonemes.items():
            audio = [tts.synthesize_adapted(p, pack, 1.0, voice) for p in ph]
            spoken[k].append(embed_sentences(encoder, audio, tts.sample_rate))
        print(f"{i + 1}/{len(voices)} voices, {time.perf_counter() - t0:.0f}s", flush=True)
    arrays = {k: np.stack(v) for k, v in spoken.items()}
    np.savez(out, **arrays)  # type: ignore[arg-type]
    pool = arrays["pool"]
    for k in SETS:
        d = arrays[k] - pool
        rest = (d.sum(0) - d) / (len(d) - 1)  # each voice's offset against the others' mean
        cos = np.sum(d * rest, 1) / np.linalg.norm(d, axis=1) / np.linalg.norm(rest, axis=1)
        explained = 1 - np.sum((d - rest) ** 2, 1) / np.sum(d**2, 1)
        print(
            json.dumps(
                {
                    "set": k,
                    "cos_to_pool": round(float(np.mean(np.sum(arrays[k] * pool, 1))), 3),
                    "offset_norm": round(float(np.linalg.norm(d, axis=1).mean()), 3),
                    "consistency": round(float(cos.mean()), 3),
                    "explained_by_mean": round(float(explained.mean()), 3),
                }
            )
        )


def mean_offset(path: Path, key: str) -> np.ndarray:
    with np.load(path) as saved:
        return np.asarray((saved[key] - saved["pool"]).mean(0), np.float32)


def patch_jacobian_offset(offset: np.ndarray) -> None:
    direction = instant_decoder.DecoderJacobian.direction

    def moved(self: Any, target: Any, current: Any) -> Any:
        return direction(self, unit(unit(target) + offset), current)

    instant_decoder.DecoderJacobian.direction = moved  # type: ignore[method-assign]


def patch_finetune_offset(offset: np.ndarray) -> None:
    init = decoder_adaptation.DecoderTuner.__init__

    def moved(self: Any, tts: Any, encoder: Any, asr: Any, pack: Any, target: Any, *a: Any, **k: Any) -> None:
        init(self, tts, encoder, asr, pack, unit(unit(target) + offset), *a, **k)

    decoder_adaptation.DecoderTuner.__init__ = moved  # type: ignore[method-assign]


def patch_step(step: float) -> None:
    load = instant_decoder.DecoderJacobian.load.__func__  # type: ignore[attr-defined]

    def sized(cls: Any, path: Path | None = None) -> Any:
        jacobian = load(cls, path)
        object.__setattr__(jacobian, "step", step)
        return jacobian

    instant_decoder.DecoderJacobian.load = classmethod(sized)  # type: ignore[method-assign,assignment]


def patch_trajectory_average() -> None:
    trajectory: list[dict[str, np.ndarray]] = []
    scores: list[float] = []
    adapt = eval_clone.adapt_decoder

    def recording(tuner: Any, **kw: Any) -> Any:
        trajectory.clear()
        scores.clear()
        step = tuner.step

        def recorded() -> Any:
            score, deltas = step()
            trajectory.append(deltas)
            scores.append(score.objective)
            return score, deltas

        tuner.step = recorded
        return adapt(tuner, **kw)

    def mean(items: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.mean([d[k] for d in items], axis=0).astype(np.float32) for k in items[0]}

    evaluate = eval_clone.CloneEvaluator._adapt_decoder

    def judged(self: Any, z: Any, enrol: Any, reference: Any, real_f0: Any, start: Any) -> dict[str, Any]:
        out = evaluate(self, z, enrol, reference, real_f0, start)
        tts, pack, n = self.torch_tts(), self.basis.pack(z), len(trajectory)
        top = [trajectory[i] for i in np.argsort(scores)[::-1][:5]]
        candidates = {
            "last": trajectory[-1],
            "swa_from8": mean(trajectory[min(8, n - 1) :]),
            "swa_second_half": mean(trajectory[n // 2 :]),
            "top5": mean(top),
        }
        alt = {"best": {"served": out["secs"], "wer": out["wer"]}}
        validation = [self._phonemes[s] for s in VALIDATION_SENTENCES]
        for name, deltas in candidates.items():
            adapted = AdaptedWeights("in-memory", deltas)
            choice = choose_runtime(self.tts, tts, self.encoder, validation, pack, adapted, enrol)
            engine = tts if choice.as_trained else self.tts
            result = self.judge(pack, reference, real_f0, speak=self._speaker(engine, adapted))
            alt[name] = {"served": result["secs"], "wer": result["wer"], "moved": choice.as_trained}
        out["alternatives"] = alt
        print("ALT", json.dumps(alt), flush=True)
        return out

    eval_clone.adapt_decoder = recording
    eval_clone.CloneEvaluator._adapt_decoder = judged  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    measure = sub.add_parser("content-offset")
    measure.add_argument("--clips", type=Path, required=True)
    measure.add_argument("--out", type=Path, required=True)
    probe = sub.add_parser("eval", help="bench/clone.py with one probe; its arguments after --")
    probe.add_argument(
        "--probe",
        required=True,
        choices=("jacobian-offset", "finetune-offset", "trajectory-average", "step"),
    )
    probe.add_argument("--offsets", type=Path, help="content-offset's output")
    probe.add_argument("--step", type=float, default=0.04)
    probe.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command == "content-offset":
        content_offset(args.clips, args.out)
        return
    if args.probe == "jacobian-offset":
        patch_jacobian_offset(mean_offset(args.offsets, "ft"))  # the Jacobian's sentences are these
    elif args.probe == "finetune-offset":
        patch_finetune_offset(mean_offset(args.offsets, "ft"))
    elif args.probe == "trajectory-average":
        patch_trajectory_average()
    else:
        patch_step(args.step)
    sys.argv = [sys.argv[0], *[a for a in args.rest if a != "--"]]
    clone.main()


if __name__ == "__main__":
    main()
