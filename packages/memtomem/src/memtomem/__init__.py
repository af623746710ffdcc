"""memtomem: a local memory store for AI agents."""

__version__ = "0.7.0.dev0"
