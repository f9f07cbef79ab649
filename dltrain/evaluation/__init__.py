"""Evaluation: metrics, reports (tables, JSON) and gates."""
