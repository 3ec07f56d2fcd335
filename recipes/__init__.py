"""The packaged recipes: training recipes (``*.yaml``), data recipes (``data/``), sweeps (``sweeps/``) and
search spaces (``search/``). They live at the repository root and install as ``routertrain.recipes``
(``pyproject.toml`` maps the folder into the package), so a clone and an installed wheel read the same files."""
