"""Texts to model inputs, shared by training and inference: tokenizing, long-text windows, the max
length, length-bucketed batches with dynamic padding, and the compute precision."""
