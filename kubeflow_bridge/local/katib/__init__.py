"""Katib (Experiment, Trial) on Ray Tune for the local runtime."""
