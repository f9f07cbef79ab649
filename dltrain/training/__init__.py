"""Training: optimizers, schedules, callbacks, device placement and the fit loop."""
