"""SALMONN model parts: Whisper wrapper, BEATs, window-level Q-Former, the full model, checkpoints."""
