"""The router network: a pretrained encoder with a multi-label head, attention kernels, offline encoder install."""
