"""ponder: an open Python stack for reasoning models."""
__version__ = "0.1.0"
