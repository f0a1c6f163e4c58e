"""Alignment: CLIP scoring, acceptance filters and QA reports for pair datasets.

Importing this package is cheap; scorers import open_clip only when built.
"""
