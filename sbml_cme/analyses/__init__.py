"""Analyses of a Network: one module per analysis, one public function each."""

from .deterministic import simulate_deterministic

__all__ = ["simulate_deterministic"]
