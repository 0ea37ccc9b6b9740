"""Scored batch formation: pure selection maths, scorers, the in-step
selector and the irreducible-loss tables it reads."""

from accel.selection.scorers import make_scorer
from accel.selection.scorers import SCORERS
from accel.selection.select import class_weights_from_counts
from accel.selection.select import METHODS
from accel.selection.select import sampling_probs
from accel.selection.select import select_batch
from accel.selection.select import variance_reduction
from accel.selection.selector import candidate_batch_size
from accel.selection.selector import check_task
from accel.selection.selector import DEFAULTS
from accel.selection.selector import make_selector
from accel.selection.selector import Selector
from accel.selection.tables import load_table
from accel.selection.tables import save_table
