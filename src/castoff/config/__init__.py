"""Saved destinations and workflows: the TOML config, the keyring, and bucket name rules.

The CLI commands that use them live in ``castoff.commands``.
"""
