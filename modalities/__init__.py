"""Modality adapters: each wraps a diffusers pipeline for one direction of generation.

Adapters take a batch of prompts plus one seed per sample and return samples. They know nothing of
scoring or files. Importing this package is cheap; diffusers loads when an adapter is built.
"""
