"""Recipes: one module per paper with its profiles, data assembly, table rows and evaluation.

A recipe brings the paper's settings and its loss to the one training loop (`usnb.train.fit`); the
notebook calls the recipe in a few lines per cell.
"""
