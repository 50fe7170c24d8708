"""TinyGPT: scaling-law research on small GPT-style language models."""

__version__ = "0.1.0"
