"""Synthetic data sets for the models trained in this repository (see `engine.train.dates`)."""
