"""Listening studies (LakhNES §5): a Turing test and a preference test that anyone can run.

The core, numpy and the standard library only (no torch):

- :mod:`lakhnes.listen.clips`: the uniformly random TX1 model of the control pairs, song folders
  (MIDI, TX1, WAV), seeded random slices rendered by the synth, loudness matching;
- :mod:`lakhnes.listen.study`: a study folder (``setup``: clips + ``study.json``), and how a batch
  of pairs is drawn (systems balanced, clips without replacement, two control pairs);
- :mod:`lakhnes.listen.store`: the answers, one SQLite row each (WAL), batches that survive a
  restart, CSV export;
- :mod:`lakhnes.listen.results`: which listeners count, per-system accuracy / share won with
  standard errors, pairwise significance (t-test, normal approximation) and the figure.

The page and its routes are in :mod:`lakhnes.studio.listen_routes`; the commands in
``lakhnes listen`` (:mod:`lakhnes.cli.listen`).
"""

from lakhnes.listen.study import Settings, Study, setup_study

__all__ = ["Settings", "Study", "setup_study"]
