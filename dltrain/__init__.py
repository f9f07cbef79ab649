"""dltrain: from a raw dataset to a trained, evaluated and tuned Keras model, from the shell.

This package root is light: it never imports TensorFlow (see DESIGN.md, "Two layers").
"""

__version__ = "0.1.0"
