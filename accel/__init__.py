"""accel: JAX training that reaches a target accuracy in less wall-clock time."""
