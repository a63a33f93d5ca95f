"""Decoding: the song so far (``state``), the rules that mask or re-weight the next token
(``rules``), forced events of ``--keep`` and ``--rhythm`` (``forced``), sampling from logits
(``sampler``) and the loop that runs them around a model's steps (``loop``).
:mod:`lakhnes.generate` sets up the modes and calls the loop."""
