"""Scale: the device mesh, shardings from logical names, precision policy
and multi-host set-up. Everything runs on JAX's own engine (jit with
shardings, jax.distributed); there is no communication code here."""

from accel.parallel.distributed import initialize
from accel.parallel.distributed import process_batch_size
from accel.parallel.mesh import AXES
from accel.parallel.mesh import DEFAULT_AXIS_RULES
from accel.parallel.mesh import DEFAULT_MESH
from accel.parallel.mesh import make_mesh
from accel.parallel.precision import Policy
from accel.parallel.precision import policy
from accel.parallel.sharding import batch_sharding
from accel.parallel.sharding import check_batch_size
from accel.parallel.sharding import check_replication
from accel.parallel.sharding import global_batch
from accel.parallel.sharding import param_shardings
from accel.parallel.sharding import replicated
from accel.parallel.sharding import replicated_batch
from accel.parallel.sharding import state_shardings
from accel.parallel.sharding import with_shardings
