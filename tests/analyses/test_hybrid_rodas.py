"""The hybrid kernel's stiff integrator and Jacobian: Rodas4's orders (local error of the
solution h^5, of the embedded solution and of the dense output h^4), its L-stability,
and the grouped finite-difference Jacobian equal to the column-by-column one."""

import warnings
from pathlib import Path

import numpy as np
import sympy
from scipy import integrate

from sbml_cme.analyses import hybrid
from sbml_cme.analyses.ssa import whole_initial_counts
from sbml_cme.io import read_sbml
from sbml_cme.kinetics import compile_network
from sbml_cme.network import TIME, Network, Parameter, RateRule

MODELS = Path(__file__).resolve().parents[2] / "models" / "biomodels"
U, V = sympy.symbols("u v")


def _kernel(network: Network):
    """(data, hybrid data, x, p, stack, rule stack) of ``network``, as simulate_hybrid
    builds them."""
    network = hybrid._live_rate_constants(network)
    compiled = compile_network(network, random_draws=True)
    data = hybrid._hybrid_data(network, 1e-7, 1e-9, hybrid.METHODS["rosenbrock"])
    x = whole_initial_counts(network).astype(float)
    p = np.concatenate([compiled.parameter_vector(), np.zeros(compiled.random.n_slots)])
    return (compiled.data, data, x, p, np.empty(max(compiled.data.stack_size, 1)),
            np.empty(max(data.rule_stack_size, 1)))


def _jacobian(kernel, t, h, y0):
    data, hyb, x, p, stack, rule_stack = kernel
    m = y0.shape[0]
    f0 = np.zeros(m)
    hybrid._derivatives(data, hyb, x, p, t, y0, f0, stack, rule_stack)
    jac, dfdt = np.zeros((m, m)), np.zeros(m)
    hybrid._jacobian(data, hyb, x, p, t, h, y0, f0, jac, dfdt, np.zeros(m), np.zeros(m), stack,
                     rule_stack)
    return f0, jac, dfdt


def _rodas(kernel, t, h, y0):
    """One Rodas4 step: (solution, embedded solution, dense output at mid-step)."""
    data, hyb, x, p, stack, rule_stack = kernel
    m = y0.shape[0]
    f0, jac, dfdt = _jacobian(kernel, t, h, y0)
    y1, error, dense = np.zeros(m), np.zeros(m), np.zeros((5, m))
    hybrid._rodas_step(data, hyb, x, p, t, h, y0, f0, jac, dfdt, np.zeros((m, m)),
                       np.zeros(m, dtype=np.int64), np.zeros((6, m)), np.zeros(m), y1,
                       np.zeros(m), error, dense, stack, rule_stack)
    middle = np.array([hybrid._dense_value(True, dense, c, 0.5) for c in range(m)])
    return y1, y1 - error, middle


def _nonautonomous() -> Network:
    """u' = -v u + sin 3t, v' = u - v^2 + t (nonlinear, reads time)."""
    return Network(species=(), reactions=(),
                   parameters=(Parameter("u", 1.0, constant=False),
                               Parameter("v", 0.5, constant=False)),
                   rate_rules=(RateRule("u", -V * U + sympy.sin(3 * TIME)),
                               RateRule("v", U - V ** 2 + TIME)))


def test_rodas4_orders_of_solution_embedded_solution_and_dense_output():
    kernel = _kernel(_nonautonomous())
    assert not kernel[1].autonomous
    t0, y0 = 0.3, np.array([1.0, 0.5, 0.0])  # u, v, Lambda

    def rhs(t, y):
        return [-y[1] * y[0] + np.sin(3 * t), y[0] - y[1] ** 2 + t]

    steps = np.array([0.1, 0.05, 0.025])
    errors = []
    for h in steps:
        exact = integrate.solve_ivp(rhs, (t0, t0 + h), y0[:2], method="DOP853", rtol=1e-13,
                                    atol=1e-15, dense_output=True)
        y1, embedded, middle = _rodas(kernel, t0, h, y0)
        errors.append([np.abs(y1[:2] - exact.y[:, -1]).max(),
                       np.abs(embedded[:2] - exact.y[:, -1]).max(),
                       np.abs(middle[:2] - exact.sol(t0 + h / 2)).max()])
    slopes = np.polyfit(np.log(steps), np.log(np.array(errors)), 1)[0]
    # local errors: order 4 -> h^5; embedded order 3 and the 3rd-order dense output -> h^4
    assert abs(slopes[0] - 5) < 0.5 and abs(slopes[1] - 4) < 0.5 and abs(slopes[2] - 4) < 0.5, \
        slopes


def test_rodas4_is_l_stable_and_stiffly_accurate():
    """u' = -1e8 (u - cos t): one step of h = 1 lands on the slow manifold cos(t + h)."""
    network = Network(species=(), reactions=(),
                      parameters=(Parameter("u", 1.0, constant=False),),
                      rate_rules=(RateRule("u", -1e8 * (U - sympy.cos(TIME))),))
    y1, _, _ = _rodas(_kernel(network), 0.0, 1.0, np.array([1.0, 0.0]))
    assert abs(y1[0] - np.cos(1.0)) < 1e-6, y1


def test_grouped_jacobian_equals_the_column_by_column_one():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        teusink = read_sbml(MODELS / "BIOMD0000000064.xml")
    teusink, _ = hybrid.auto_partition(teusink, np.linspace(0.0, 10.0, 11))
    teusink = teusink.with_partition(["BPG"])
    structure = _kernel(teusink)[1]  # fewer right-hand sides than columns
    assert structure.n_jacobian_groups < structure.variable_index.shape[0] and structure.autonomous
    rng = np.random.default_rng(1)
    for network, t in [(teusink, 0.0), (_nonautonomous(), 0.7)]:
        kernel = _kernel(network)
        hyb = kernel[1]
        m = hyb.variable_index.shape[0] + 1
        y0 = np.zeros(m)
        hybrid._read_state(hyb, kernel[2], kernel[3], y0)
        y0[:-1] *= rng.uniform(0.5, 1.5, m - 1)
        _, grouped, grouped_dt = _jacobian(kernel, t, 0.01, y0)
        dense = (kernel[0], hyb._replace(
            jacobian_group=np.arange(m - 1), n_jacobian_groups=m - 1,
            jacobian_pattern=np.ones((m, m), dtype=np.bool_), autonomous=False)) + kernel[2:]
        _, full, full_dt = _jacobian(dense, t, 0.01, y0)
        assert np.count_nonzero(full) > m - 1
        np.testing.assert_array_equal(grouped, full)
        np.testing.assert_array_equal(grouped_dt, full_dt)
