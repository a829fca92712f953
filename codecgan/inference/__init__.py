"""Using a trained model: its generator from a checkpoint (``codecgan.load``), long files in windows, and the
``codecgan enhance|encode|decode`` commands. Nothing here imports Lightning except ``prediction_writer``,
the callback for ``codecgan predict``."""
