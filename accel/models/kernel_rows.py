"""How many rows each parameter multiplies in one forward pass: the R of a
Newton-Schulz cost rule (accel.optim.orthogonal), per kernel.

A dense kernel applied to a batch of B examples multiplies B rows; applied
to B sequences of L tokens, B L rows; a convolution kernel multiplies one
row per example and output position (B H W for a 2-D image), which a count
of examples alone misses by the number of positions; a recurrent kernel
multiplies B rows at each of L steps. `kernel_rows` reads all of them off
the program itself: it traces `fn` to a jaxpr and, for every
`dot_general` and `conv_general_dilated` whose operand is a parameter
(directly, or through a cast, reshape or transpose), adds the operation's
output size over the kernel's output features. Calls, checkpointing and
custom derivatives are followed into (other control flow, such as
`cond` and `while`, is not: its kernels count 0); a scan multiplies what its body does
with a parameter passed in whole by its length (one row set per step). A
parameter used twice (tied weights) adds both uses. Leaves that no such
operation uses get 0.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
from jax.extend import core as jex_core

# Primitives that pass a kernel on unchanged for this purpose (same
# entries, other dtype, shape or order).
_PASS = frozenset({"convert_element_type", "reshape", "transpose", "copy",
                   "copy_p", "squeeze", "expand_dims", "reduce_precision",
                   "sharding_constraint", "optimization_barrier"})
# Primitives whose sub-program takes the operands one to one.
_CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr",
          "core_call": "call_jaxpr", "remat": "jaxpr", "checkpoint": "jaxpr",
          "custom_jvp_call": "call_jaxpr", "custom_vjp_call": "call_jaxpr",
          "custom_vjp_call_jaxpr": "fun_jaxpr"}


def kernel_rows(fn: Callable[..., Any], params, *args) -> Any:
  """A tree like `params`: per leaf, the rows it multiplies in one call of
  `fn(params, *args)` (0 if none). Arguments may be arrays or
  jax.ShapeDtypeStruct; nothing is computed."""
  closed = jax.make_jaxpr(fn)(params, *args)
  leaves, treedef = jax.tree.flatten(params)
  rows = [0] * len(leaves)
  env = {v: i for i, v in enumerate(closed.jaxpr.invars[:len(leaves)])}
  _walk(closed.jaxpr, env, rows, 1)
  return treedef.unflatten(rows)


def _jaxpr(x):
  return getattr(x, "jaxpr", x)


def _source(env, v):
  return env.get(v) if isinstance(v, jex_core.Var) else None


def _walk(jaxpr, env, rows, times: int) -> None:
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    src = [_source(env, v) for v in eqn.invars]
    if name in _PASS:
      if src and src[0] is not None:
        env[eqn.outvars[0]] = src[0]
    elif name == "dot_general":
      (contract_lr, batch_lr) = eqn.params["dimension_numbers"]
      out = eqn.outvars[0].aval.size
      for side in (0, 1):
        if src[side] is None:
          continue
        shape = eqn.invars[side].aval.shape
        fixed = set(contract_lr[side]) | set(batch_lr[side])
        free = math.prod(d for a, d in enumerate(shape) if a not in fixed)
        batch = math.prod(shape[a] for a in batch_lr[side])
        rows[src[side]] += times * out // max(free * batch, 1)
    elif name == "conv_general_dilated":
      if len(src) > 1 and src[1] is not None:
        out = eqn.outvars[0].aval
        features = out.shape[eqn.params["dimension_numbers"].out_spec[1]]
        rows[src[1]] += times * out.size // max(features, 1)
    elif name == "scan":
      body = _jaxpr(eqn.params["jaxpr"])
      consts, carry = eqn.params["num_consts"], eqn.params["num_carry"]
      # A parameter passed whole (a const) acts at every step; a stacked
      # one (scanned over) acts once per slice.
      whole, sliced = {}, {}
      for k, (outer, v) in enumerate(zip(eqn.invars, body.invars)):
        i = _source(env, outer)
        if i is not None and not consts <= k < consts + carry:
          (whole if k < consts else sliced)[v] = i
      _walk(body, whole, rows, times * eqn.params["length"])
      _walk(body, sliced, rows, times)
    elif name in _CALLS:
      sub = eqn.params.get(_CALLS[name])
      if sub is None:
        continue
      sub = _jaxpr(sub)
      if len(sub.invars) != len(eqn.invars):
        continue  # not one to one: its uses are not counted
      inner = {v: i for v, i in zip(sub.invars, src) if i is not None}
      if inner:
        _walk(sub, inner, rows, times)
