"""Self-adapting TinyGPT: self-edit policies, the LoRA inner loop, the ReST-EM outer loop."""
