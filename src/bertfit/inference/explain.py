"""Which words drove a prediction (``bertfit explain``, ``Predictor.explain``).

Attributions explain the number the user sees: the calibrated probability of the explained class
(multi-label: of each label), or the predicted value (regression), computed with Captum on the PyTorch model.
Word pieces are summed back into the words the user wrote (runs of non-space characters), for the text and,
for pair models, its second text. A ``--long-text window`` model's text is attributed in all its windows at
once, through the aggregation that makes the text's output.

Two methods are offered:
- **occlusion** (the default): a word's score is the output less the output without the word (Captum's
  ``FeatureAblation`` on the attention mask, the word's pieces left out of attention and pooling), in one
  forward pass per word, batched.
- **integrated gradients** (``method="integrated-gradients"``): on the word-embedding layer, from a baseline
  that is the same text with every word piece replaced by the padding token (the special tokens kept), so
  the scores add up to the output's distance from that baseline (within the convergence delta returned).

bench/explain.py deletes each method's top words, and as many random words, from test texts and measures
the drop in the predicted class's probability. Occlusion's top words moved it most on SMS spam and CoLA at
1, 3 and 5 words, beat random words everywhere, and took half the time (see docs/results.md); integrated
gradients beat random words too, by less (on CoLA at 5 words, 0.29 against random's 0.27). Gradient x input,
the one-pass gradient method, did worse than random words on CoLA, so it is not offered; ``explain`` keeps it
(``method="gradient-x-input"``) only so that the benchmark can run it again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from bertfit.errors import ConfigError

METHODS = ("occlusion", "integrated-gradients", "gradient-x-input")  # the last: the benchmark's comparison only
DEFAULT_METHOD = METHODS[0]
# Integrated gradients' path steps: the sum of the word scores then matches the output's difference from
# the baseline to within a few hundredths (the convergence delta, returned with each explanation).
STEPS = 32
TEXTS_PER_BATCH = 4  # texts explained together: each expands to STEPS rows in one backward pass
WORDS_PER_PASS = 16  # occlusion: words blanked in one forward pass (each a copy of the batch's texts)


@dataclass
class Explanation:
    """One text's attributions for one explained output. ``index``: the text's position among those given;
    ``words``: (word, score) in reading order, scores
    in the output's units (a probability, or the value); ``pair_words``: the second text's, for pair models.
    ``output``: the explained output for the text, ``baseline``: for the all-padding text; ``delta``: how
    far the scores' sum is from ``output - baseline`` (integrated gradients promises it small; occlusion's
    scores, each word's effect alone, need not add up)."""

    index: int
    text: str
    label: str
    output: float
    baseline: float
    words: list[tuple[str, float]]
    pair_words: list[tuple[str, float]] | None = None
    delta: float = 0.0
    method: str = DEFAULT_METHOD

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` words that pushed the output up most."""
        return sorted(self.words, key=lambda pair: -pair[1])[:k]

    def to_dict(self) -> dict:
        found = {"label": self.label, "output": self.output, "baseline": self.baseline, "delta": self.delta,
                 "method": self.method, "words": [{"word": w, "score": s} for w, s in self.words]}  # fmt: skip
        if self.pair_words is not None:
            found["pair_words"] = [{"word": w, "score": s} for w, s in self.pair_words]
        return found


@dataclass
class _Target:
    row: int  # position among the texts
    index: int  # output column explained
    label: str


@dataclass
class _Encoded:
    ids: torch.Tensor
    mask: torch.Tensor
    types: torch.Tensor | None
    spans: list = field(default_factory=list)  # per text: (token -> (part, word)) and the words of each part


def targets_of(task, outputs: np.ndarray, label: str | None) -> list[_Target]:
    """What to explain per text (``Task.explained_columns``): ``label`` where given; else the predicted class,
    every label a multi-label model chose (the most probable one where it chose none), or the value."""
    names = list(task.labels.names)
    return [_Target(row, column, names[column]) for row, column in task.explained_columns(outputs, label)]


def explain(predictor, texts: list[str], pairs: list[str] | None = None, label: str | None = None,
            method: str = DEFAULT_METHOD) -> list[Explanation]:  # fmt: skip
    """Per-word attributions for ``texts`` (``predictor``: a ``Predictor`` with its PyTorch model); one
    ``Explanation`` per text and explained output (multi-label: per chosen label), in input order."""
    if method not in METHODS:
        raise ConfigError(f"unknown attribution method {method!r}: {', '.join(METHODS)}")
    model = predictor.model
    outputs = predictor.predict_proba(texts, pairs)
    targets = targets_of(predictor.task, outputs, label)
    if predictor.policy.long_text == "window":
        return [_explain_windows(predictor, texts[t.row], t, method) for t in targets]
    found: list[Explanation] = []
    for start in range(0, len(targets), TEXTS_PER_BATCH):
        batch = targets[start : start + TEXTS_PER_BATCH]
        rows = [t.row for t in batch]
        encoded = _encode(predictor, [texts[r] for r in rows], None if pairs is None else [pairs[r] for r in rows])
        scores, delta, reached, base = _attribute(
            model, predictor.task, encoded, [t.index for t in batch], method, predictor.tokenizer.pad_token_id or 0
        )
        for k, target in enumerate(batch):
            words, pair_words = _merge(encoded.spans[k], scores[k])
            found.append(Explanation(target.row, texts[target.row], target.label, float(reached[k]),
                                     float(base[k]), words, pair_words, float(delta[k]), method))  # fmt: skip
    return found


def _explain_windows(predictor, text: str, target: _Target, method: str) -> Explanation:
    """A long text the model reads as overlapping windows (``--long-text window``): every window is attributed
    at once, through the aggregation (mean or max of the window logits) that makes the text's output, and a
    word's score is the sum of its tokens' scores over the windows it appears in."""
    encoded = _encode(predictor, [text], None, windows=True)
    count = len(encoded.ids)
    scores, _, reached, base = _attribute(
        predictor.model, predictor.task, encoded, [target.index] * count, method,
        predictor.tokenizer.pad_token_id or 0, windows=predictor.policy.aggregate,
    )  # fmt: skip
    totals = sum(_word_totals(span, row)[0] for span, row in zip(encoded.spans, scores))
    merged = [(word, _significant(score)) for (_, _, word), score in zip(encoded.spans[0][1][0], totals)]
    delta = abs(float(reached[0] - base[0]) - float(scores.sum()))
    return Explanation(target.row, text, target.label, float(reached[0]), float(base[0]), merged, None, delta, method)


def _encode(predictor, texts: list[str], pairs: list[str] | None, windows: bool = False) -> _Encoded:
    """Token ids as the model reads them (truncated at its max length; ``windows``: one text cut into the
    overlapping windows prediction reads, one row each), with each token's word."""
    tokenizer = predictor.tokenizer
    window = {}
    if windows:
        stride = min(predictor.policy.stride, predictor.max_length // 2)  # as encoding.batching.encode_texts
        window = {"stride": stride, "return_overflowing_tokens": True}
    encoded = tokenizer(texts, pairs, truncation=True, max_length=predictor.max_length, padding=True,
                        return_offsets_mapping=True, return_tensors="pt", **window)  # fmt: skip
    types = encoded.get("token_type_ids") if predictor.token_types and not windows else None
    spans = []
    for i in range(len(encoded["input_ids"])):
        text = texts[0] if windows else texts[i]
        parts = [text] if pairs is None else [text, pairs[i]]
        words = [[(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", part)] for part in parts]
        sequence = encoded.sequence_ids(i)
        owner = {}
        for position, (begin, end) in enumerate(encoded["offset_mapping"][i].tolist()):
            part = sequence[position]
            if part is None or end <= begin:
                continue
            for w, (start, stop, _) in enumerate(words[part]):
                if start <= begin < stop:
                    owner[position] = (part, w)
                    break
        spans.append((owner, words))
    return _Encoded(encoded["input_ids"], encoded["attention_mask"], types, spans)


def _embedding_layer(model) -> torch.nn.Module:
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "get_input_embeddings"):
        return encoder.get_input_embeddings()
    return model.get_input_embeddings()


def _attribute(model, task, encoded: _Encoded, columns: list[int], method: str, pad_id: int,
               windows: str | None = None):  # fmt: skip
    """Per token scores (batch, tokens) that sum, per word, to the word's score; the convergence delta, the
    outputs and the baseline outputs. ``windows`` (mean or max): the rows are one text's windows, whose
    logits combine into the text's."""
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

    scale, shift = task.applied_scale()
    # Occlusion's scores are differences of two outputs, near 1 on confident rows: in float32 a probability of
    # 1 - 1e-8 is 1, and every word of a saturated text would tie at 0. Gradients need no such care.
    precision = torch.float64 if method == "occlusion" else torch.float32

    def output_of(ids, mask, types=None):
        """What the user sees, per output column (``Task.shown_outputs``): probabilities, or the value."""
        extra = {} if types is None else {"token_type_ids": types}
        logits = model(input_ids=ids, attention_mask=mask, **extra).logits.to(precision)
        if windows is not None:
            logits = _combined(logits, len(columns), windows)
        return task.shown_outputs(logits * scale + shift)

    device = next(model.parameters()).device
    special = (~encoded.mask.bool() | _special_tokens(encoded)).to(device)
    ids, mask = encoded.ids.to(device), encoded.mask.to(device)
    baseline = torch.where(special, ids, torch.full_like(ids, pad_id))
    arguments = (mask,) if encoded.types is None else (mask, encoded.types.to(device))
    target = list(columns)
    layer = _embedding_layer(model)
    model.eval()
    with torch.enable_grad():
        if method == "integrated-gradients":
            explainer = LayerIntegratedGradients(output_of, layer)
            scores, delta = explainer.attribute(ids, baselines=baseline, target=target, n_steps=STEPS,
                                                additional_forward_args=arguments, return_convergence_delta=True)  # fmt: skip
            per_token = scores.sum(-1).detach()
        elif method == "occlusion":
            per_token, delta = _occlusion(output_of, encoded, ids, target, arguments, windows), None
        else:
            # x·∇ on the difference from the baseline's embeddings: the first-order share of each token
            explainer = LayerGradientXActivation(output_of, layer, multiply_by_inputs=False)
            gradients = explainer.attribute(ids, target=target, additional_forward_args=arguments)
            difference = layer(ids) - layer(baseline)
            per_token, delta = (gradients * difference).sum(-1).detach(), None
        with torch.no_grad():
            rows = torch.arange(len(target))
            reached = output_of(ids, *arguments)[rows, target]
            base = output_of(baseline, *arguments)[rows, target]
    if windows is not None and method != "occlusion":
        # Every window's row carries the text's output, so each window's gradient was counted once per window.
        per_token = per_token / len(target)
    per_token = per_token * mask
    if delta is None:
        delta = (reached - base) - per_token.sum(1)
    return (per_token.float().cpu().numpy(), delta.detach().abs().float().cpu().numpy(), reached.float().cpu().numpy(),
            base.float().cpu().numpy())  # fmt: skip


def _occlusion(output_of, encoded: _Encoded, ids, target: list[int], arguments, windows) -> torch.Tensor:
    """Each word's score: the output less the output without the word (Captum's ``FeatureAblation`` on the
    attention mask, one feature per word, so the word's pieces are out of attention and pooling in every
    window it appears in: the text as if the word were deleted), spread evenly over the word's pieces so
    that ``_word_totals`` adds them back to it."""
    from captum.attr import FeatureAblation

    mask, types = arguments[0], arguments[1:]
    groups = _word_groups(encoded).to(ids.device)
    blanked = FeatureAblation(lambda masked, *rest: output_of(rest[0], masked, *rest[1:])).attribute(
        mask, baselines=0, target=target, feature_mask=groups, additional_forward_args=(ids, *types),
        perturbations_per_eval=WORDS_PER_PASS,
    )  # fmt: skip
    if windows is not None:  # one text: a word's pieces counted over all its windows
        pieces = torch.bincount(groups.flatten())[groups]
    else:
        pieces = torch.stack([torch.bincount(row, minlength=int(groups.max()) + 1)[row] for row in groups])
    return torch.where(groups > 0, blanked / pieces, torch.zeros_like(blanked)).detach()


def _word_groups(encoded: _Encoded) -> torch.Tensor:
    """Per token, 1 + its word's number (the pair's words after the text's), 0 for special tokens and padding."""
    groups = torch.zeros_like(encoded.ids)
    for i, (owner, words) in enumerate(encoded.spans):
        for position, (part, word) in owner.items():
            groups[i, position] = 1 + word + (len(words[0]) if part else 0)
    return groups


def _combined(logits: torch.Tensor, count: int, how: str) -> torch.Tensor:
    """Each window's row replaced by its text's logits: the mean or max over the ``count`` windows. Captum
    stacks the path's steps one after another, each of all ``count`` windows, so a step is ``count`` rows."""
    steps = logits.view(-1, count, logits.shape[-1])
    text = steps.mean(dim=1) if how == "mean" else steps.max(dim=1).values
    return text.repeat_interleave(count, dim=0)


def _special_tokens(encoded: _Encoded) -> torch.Tensor:
    """Tokens that belong to no word: [CLS], [SEP] and their kind."""
    special = torch.ones_like(encoded.ids, dtype=torch.bool)
    for i, (owner, _) in enumerate(encoded.spans):
        for position in owner:
            special[i, position] = False
    return special


def _merge(span, scores: np.ndarray) -> tuple[list, list | None]:
    """Token scores summed into the words of each part (text, pair)."""
    words, totals = span[1], _word_totals(span, scores)
    merged = [[(word, _significant(score)) for (_, _, word), score in zip(part, total)]
              for part, total in zip(words, totals)]  # fmt: skip
    return merged[0], (merged[1] if len(merged) > 1 else None)


def _word_totals(span, scores: np.ndarray) -> list[np.ndarray]:
    """One row's token scores summed per word, one array per part (text, pair)."""
    owner, words = span
    totals = [np.zeros(len(part)) for part in words]
    for position, (part, word) in owner.items():
        totals[part][word] += scores[position]
    return totals


def by_text(explanations: list[Explanation], texts: int) -> list[list[Explanation]]:
    """``explain``'s list (one per explained output) as one list per text, in the texts' order."""
    found: list[list[Explanation]] = [[] for _ in range(texts)]
    for explanation in explanations:
        found[explanation.index].append(explanation)
    return found


def format_explanation(explanation: Explanation, most: int = 5) -> str:
    """One line: the explained label and output, then the words that pushed it up most and down most."""
    up = [(w, v) for w, v in explanation.top(most) if v > 0]
    down = sorted(((w, v) for w, v in explanation.words if v < 0), key=lambda pair: pair[1])[:most]
    line = f"{explanation.label} {explanation.output:.4f} (all padding: {explanation.baseline:.4f})"
    line += "; for: " + (", ".join(f"{w} {_shown(v)}" for w, v in up) or "none")
    return line + "; against: " + (", ".join(f"{w} {_shown(v)}" for w, v in down) or "none")


def _significant(score) -> float:
    """Six significant digits, not six decimals: on a probability of 0.99999 a word's effect can be 1e-7, and
    rounding it to 0 would hide which words matter."""
    return float(f"{float(score):.6g}")


def _shown(score: float) -> str:
    return f"{score:+.3f}" if abs(score) >= 5e-4 else f"{score:+.1e}"
