"""Song files: each format a reader and/or writer of :class:`~lakhnes.core.score.NesScore`.

- :mod:`~lakhnes.formats.midi`: NES-MDB MIDI in and out;
- :mod:`~lakhnes.formats.png`: the piano roll;
- TX1 text is the token form itself (:mod:`lakhnes.core.tx1`); WAV is rendered by :mod:`lakhnes.synth`;
- :mod:`~lakhnes.formats.files`: the one place that picks a format, by file content or extension
  (``load``, ``save``, ``load_source`` for any MIDI).
"""
