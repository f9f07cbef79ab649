"""Preparing raw data, one path per kind of source.

``table/`` prepares tables (CSV/TSV/Parquet) in two streaming passes, ``series.py`` turns a table
with a time column into windows, and ``arrays.py`` splits what fits in memory (IDX, ``.npz``,
image and text class folders). ``data/prepare.py`` picks the path and writes the manifest.
"""
