"""The development kit: what tools/ and tests/ use to make data, models and scores.

It is not part of the installed package (the wheel holds ``salmonn_agent`` only); run tools
and tests from a checkout of the repository, whose root is then on ``sys.path``. It may import
``salmonn_agent``; ``salmonn_agent`` never imports it.

- :mod:`devkit.sounds`: audio synthesis for salmonn-mini's data (espeak-ng speech, ten sound classes).
- :mod:`devkit.text_bank`: sentences, prompts and held-out splits for that data.
- :mod:`devkit.assistant_bank`: the voice assistant's spoken requests and their tool calls.
- :mod:`devkit.scoring`: scoring of salmonn-mini's answers on the held-out split.
- :mod:`devkit.scenes`: synthetic front-end scenes with known boundaries.
- :mod:`devkit.demo_data`: a tiny generated training dataset (distinct tones per sample).
- :mod:`devkit.tiny`: small randomly initialised SALMONN models built locally.
"""
