"""castoff: offload and back up files; read once, write everywhere, prove every byte with BLAKE3."""

__version__ = "0.1.0"
