"""Data sources behind one interface, and their checkpointable iterators."""

# Importing the modules registers their sources.
from accel.data import digits as _digits
from accel.data import mnist1d as _mnist1d
from accel.data import sequence as _sequence
from accel.data import synthetic as _synthetic
from accel.data import text as _text
from accel.data import textures as _textures
from accel.data import tfds_source as _tfds_source
from accel.data.source import ArraySource
from accel.data.source import Batch
from accel.data.source import DataSpec
from accel.data.source import iterator_state
from accel.data.source import make_source
from accel.data.source import Source
from accel.data.source import SOURCES
from accel.data.tfds_source import DatasetNotPreparedError
