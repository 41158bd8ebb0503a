"""The trial script under model/ is run by experiments, never imported by pytest."""

collect_ignore_glob = ["model/*"]
