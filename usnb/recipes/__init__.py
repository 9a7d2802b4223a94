"""Recipes: one module per paper with its profiles, data assembly, table rows and evaluation.

A recipe brings the paper's settings and its loss to the one training loop (`usnb.train.fit`); the
notebook calls the recipe in a few lines per cell.
"""


def recipe(paper: str):
    """The recipe module of a paper as `metrics.json` names it ('kganet', 'mvcc', 'clman', 'lung_ssl'), or None."""
    import importlib

    try:
        return importlib.import_module(f"{__name__}.{paper}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{paper}":
            raise  # the recipe exists but something it imports is missing
        return None
