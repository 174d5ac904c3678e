"""Training: batching, precision, the loop, and the train() job."""
