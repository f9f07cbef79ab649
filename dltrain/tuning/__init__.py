"""Hyperparameter search with Optuna: the space, the study, the trial runner and the report.

Nothing here imports TensorFlow except ``dltrain.tuning.trial``'s training step and
``dltrain.tuning.callback``, which run inside each trial's own process.
"""
