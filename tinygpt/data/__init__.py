"""Corpora, tokenizers, the document split and the token cache."""
