"""The one reader stack: every raw file dltrain reads, prepare and predict alike.

- ``formats``: what a path holds (one list of suffixes per format), class folders, and the
  dispatch of array sources to ``idx``, ``arrays`` (``.npz``), ``images`` and ``text``;
- ``tables`` streams CSV/TSV and Parquet in batches, with ``csv_sniff`` resolving ``data.csv``'s
  ``auto`` settings and ``text_values`` spelling text cells one way;
- ``model_input`` and ``inputs`` read raw inputs for a trained model with those same pieces, so a
  value reaches the model the way ``prepare`` read it.
"""
