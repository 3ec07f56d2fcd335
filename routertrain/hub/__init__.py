"""Sharing and use: the ``Router`` inference API, the model card and pushing to the Hugging Face Hub."""
