"""Which unlabelled rows to label next (``bertfit suggest``, ``Predictor.suggest``).

Rows are ranked by how unsure the model's calibrated probabilities are; the batch is then spread over the
texts' variety: the most uncertain rows (``CANDIDATES_PER_PICK`` per row wanted) are clustered on the
model's sentence vectors into as many clusters as rows wanted, and each cluster gives its most uncertain
row, so a batch is not a hundred near-copies of one confusing text (the rule of cluster-margin sampling;
bench/suggest.py measures it against random choice, not against uncertainty alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bertfit.errors import ConfigError
from bertfit.tasks import Task

CANDIDATES_PER_PICK = 10


@dataclass
class Suggestion:
    """One row worth labelling: ``index`` is its position among the texts given; ``uncertainty`` runs from
    0 (sure) to 1 (a coin toss); ``guess`` is the model's label and ``probability`` its probability."""

    index: int
    uncertainty: float
    guess: str
    probability: float


def uncertainty(task: Task, outputs: np.ndarray) -> np.ndarray:
    """Per row, 0 (sure) to 1 (a coin toss), as the task's shape measures it (``Task.uncertainty``: the top-2
    margin; the distance from a tuned threshold; multi-label's least decided label)."""
    return task.uncertainty(outputs)


def choose(scores: np.ndarray, vectors_of, n: int, seed: int = 0) -> np.ndarray:
    """The positions of ``n`` rows, most uncertain first, spread by clustering: ``vectors_of(positions)``
    gives the sentence vectors of the candidates (computed only for them)."""
    if n >= len(scores):
        return np.argsort(-scores, kind="stable")
    candidates = np.argsort(-scores, kind="stable")[: min(len(scores), n * CANDIDATES_PER_PICK)]
    if len(candidates) <= n:
        return candidates
    from sklearn.cluster import KMeans

    vectors = np.asarray(vectors_of(candidates), dtype=np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    clusters = KMeans(n_clusters=n, n_init=1, random_state=seed).fit_predict(vectors)
    picked = [candidates[clusters == c][0] for c in np.unique(clusters)]  # candidates run most uncertain first
    missing = n - len(picked)  # clusters that came out empty: the next most uncertain rows fill in
    picked += [i for i in candidates if i not in set(picked)][:missing]
    return np.asarray(sorted(picked, key=lambda i: -scores[i]))


def suggest(predictor, texts: list[str], n: int, pairs: list[str] | None = None) -> list[Suggestion]:
    """The ``n`` rows of ``texts`` worth labelling next, most uncertain first (``predictor``: a ``Predictor``
    with its PyTorch model, for the sentence vectors)."""
    if not 1 <= n <= len(texts):
        raise ConfigError(f"n must be between 1 and the {len(texts)} texts given, got {n}")
    outputs = predictor.predict_proba(texts, pairs)
    scores = uncertainty(predictor.task, outputs)

    def vectors_of(rows: np.ndarray) -> np.ndarray:
        return predictor.sentence_vectors([texts[i] for i in rows], None if pairs is None else [pairs[i] for i in rows])

    chosen = choose(scores, vectors_of, n)
    predictions = predictor.predictions(outputs[chosen])
    return [Suggestion(int(i), float(scores[i]), p.label, p.probability) for i, p in zip(chosen, predictions)]
