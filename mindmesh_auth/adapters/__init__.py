"""Adapters: storage backends and mailers that implement the core's ports."""
