"""Inference batches: every row once, longest first, and padded size capped by the token budget."""

from bertfit.encoding.batching import inference_batches


def test_token_budget_splits_mixed_lengths_and_keeps_every_row():
    lengths = [58, 5, 12, 40, 7, 7, 30, 9, 3, 20] * 4
    batches = inference_batches(lengths, batch_size=64, max_tokens=128)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert lengths[batch[0]] == max(lengths[i] for i in batch)  # sorted: the first row is the longest
        assert len(batch) == 1 or len(batch) * lengths[batch[0]] <= 128
    assert len(batches) > 1


def test_without_a_budget_batches_are_cut_by_size_only():
    lengths = [10, 50, 20, 40, 30]
    assert inference_batches(lengths, batch_size=2) == [[1, 3], [4, 2], [0]]
