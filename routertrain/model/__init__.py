"""The router network: a pretrained encoder with a multi-label head, attention kernels, offline encoder install.

Importing this package (``import routertrain`` does) registers the router with transformers' Auto
classes as soon as those load (``auto``), without importing torch itself.
"""

from routertrain.model import auto

auto.install()
