"""Measuring models and songs: perplexity by the LakhNES protocol, music statistics of songs, and
the results table."""
