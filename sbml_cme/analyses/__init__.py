"""Analyses of a Network: one module per analysis, one public function each."""

from .cle import simulate_cle
from .cme import solve_cme, stationary_cme
from .deterministic import simulate_deterministic
from .hybrid import auto_partition, simulate_hybrid
from .lna import solve_lna
from .noise import extrinsic_noise, noise_summary
from .ssa import simulate_ssa

__all__ = ["simulate_deterministic", "simulate_ssa", "simulate_hybrid", "auto_partition",
           "solve_cme", "stationary_cme", "solve_lna", "simulate_cle", "noise_summary", "extrinsic_noise"]
