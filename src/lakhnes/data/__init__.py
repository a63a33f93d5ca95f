"""Training data: NES-MDB and the Lakh mapping onto the four NES voices, their preparation into
token shards, the streams a model trains on, and LakhNES' augmentations. Free of torch."""
