"""The one reader stack: every raw file dltrain reads, prepare and predict alike.

``formats`` says what a path holds (one list of suffixes per format) and dispatches array sources;
``idx``, ``arrays`` (``.npz``), ``images`` and ``text`` read array sources; ``tables`` streams
CSV/TSV and Parquet and spells text values canonically; ``model_input`` and ``inputs`` read raw
inputs for a trained model with those same pieces, so a value reaches the model the way
``prepare`` read it.
"""
