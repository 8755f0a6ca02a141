"""Analyses of a Network: one module per analysis, one public function each."""

from .cme import solve_cme, stationary_cme
from .deterministic import simulate_deterministic
from .ssa import simulate_ssa

__all__ = ["simulate_deterministic", "simulate_ssa", "solve_cme", "stationary_cme"]
