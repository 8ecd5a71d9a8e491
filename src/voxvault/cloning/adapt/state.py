"""What an adaptation job stores and the API validates: options, scores and checkpoints (JSON-friendly).

Torch-free on purpose: the API checks a request's options and the job runner reads checkpoints without
importing PyTorch; the optimisers (``search``, ``gradient``, ``decoder``) import this, never the reverse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from voxvault.cloning.bias_layout import DEFAULT_L2
from voxvault.errors import VoxError

SCOPES = ("bias", "all")
# Adam's step by scope: a bias moves a gain or bias directly, a weight only through the style's 128 values.
LEARNING_RATES = {"bias": 0.03, "all": 1e-3}

JOB_KIND = "voice_adapt"
METHODS = ("search", "gradient", "decoder")
# the closest clones (docs/cloning.md: 0.76 held-out SECS against ~0.64 for the style methods)
DEFAULT_METHOD = "decoder"
GRADIENT_STEP = 0.2  # Adam's step on the style, in basis standard deviations
RESUMABLE = ("queued", "running", "interrupted")
DEFAULT_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get this message.",
    "We will meet at the station at half past nine.",
)


@dataclass(frozen=True)
class AdaptOptions:
    """Search budget and objective weights (all JSON-friendly: they are stored in the job spec)."""

    max_iterations: int = 24
    population: int = 4
    max_seconds: float = 600.0
    patience: int = 8  # iterations without improvement before an early stop
    sigma: float = 0.35  # initial step, in basis standard deviations
    similarity_weight: float = 1.0
    intelligibility_weight: float = 0.3
    naturalness_weight: float = 0.05
    sentences: tuple[str, ...] = DEFAULT_SENTENCES
    seed: int = 0
    # "search": (1+λ) evolution strategy; "gradient": Adam on the style through PyTorch Kokoro;
    # "decoder": Adam on the decoder's style projections, style kept
    method: str = DEFAULT_METHOD
    learning_rate: float | None = None  # Adam's step (gradient, decoder); None: the method's default
    l2: float = DEFAULT_L2  # decoder method: pull toward the shipped weights
    scope: str = "bias"  # decoder method: "bias" (the projections' biases) or "all" (weights too)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AdaptOptions:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        if "sentences" in known:
            known["sentences"] = tuple(known["sentences"])
        opts = cls(**known)
        if not (1 <= opts.max_iterations <= 500 and 1 <= opts.population <= 32 and opts.max_seconds > 0):
            raise VoxError("invalid_options", "max_iterations 1-500, population 1-32, max_seconds > 0", 422)
        if not opts.sentences:
            raise VoxError("invalid_options", "at least one sentence is needed", 422)
        if opts.method not in METHODS:
            raise VoxError("invalid_options", f"method must be one of {', '.join(METHODS)}", 422)
        if opts.learning_rate is not None and not 0 < opts.learning_rate <= 2:
            raise VoxError("invalid_options", "learning_rate must be in (0, 2]", 422)
        if not 0 <= opts.l2 <= 1:
            raise VoxError("invalid_options", "l2 must be in [0, 1]", 422)
        if opts.scope not in SCOPES:
            raise VoxError("invalid_options", f"scope must be one of {', '.join(SCOPES)}", 422)
        return opts

    @property
    def step_size(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return LEARNING_RATES[self.scope] if self.method == "decoder" else GRADIENT_STEP

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["sentences"] = list(self.sentences)
        return out


@dataclass
class Score:
    objective: float
    similarity: float
    recall: float
    penalty: float


@dataclass
class Checkpoint:
    """Everything needed to continue the search (stored as JSON in the job row)."""

    iteration: int
    best_z: list[float]
    best: dict[str, float]
    start: dict[str, float]
    sigma: float
    stall: int
    seconds: float
    history: list[float] = field(default_factory=list)
    rng_state: dict[str, Any] = field(default_factory=dict)
    adam: dict[str, Any] = field(default_factory=dict)  # gradient method: current z, moments, step count
