"""Fitting a clone further to its speaker: style search/gradient and decoder adaptation (PyTorch for the
gradient methods). ``state`` holds the torch-free options and checkpoints the API and the job runner use."""
