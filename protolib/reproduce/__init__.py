"""The reproduction of the paper: its numbers, the protocol per (dataset, seed), records, tables, figures.

One module per job:

``paper``        the paper's Tables 1 and 2 and settings, as data
``keys``         what identifies a stored step: :class:`~protolib.reproduce.keys.Settings`, seeds, step keys
``steps``        the four steps of one (dataset, seed) and the
                 :class:`~protolib.reproduce.steps.RunArtefacts` they share
``records``      a step's file and provenance, reading runs back, the output files
``protocol``     :func:`~protolib.reproduce.protocol.run`: every step of every (dataset, seed), resumable;
                 :func:`~protolib.reproduce.protocol.with_record`: the reproduction chapter's numbers
``tables``       cells over runs (mean and spread, paired gaps) and the Markdown Tables 1 and 2
``check``        a run computed now against the recorded run of the same seed
``departures``   every departure from the paper's settings, from the profile, data and records
``table2_maps``  Table 2's "Ours B4" / "Ours B234" rows for a backbone (fitted maps, cached)
``figures``      Figures 1 and 2 on the paper's data when present, else the best at hand
``cli``          ``python -m protolib.reproduce``

The names below are the ones a chapter needs; the rest is in the modules.
"""

from .keys import Settings, seed_for
from .protocol import (
           ALL_DATASETS,
           OFFLINE,
           Outcome,
           Reproduction,
           run,
           with_record,
)
from .records import STEPS, read, record, record_dir, write_outputs
from .steps import RunArtefacts
from .tables import TABLE1_ROWS, TABLE2_ROWS, aggregate, by_seed, markdown_table

__all__ = ["Settings", "seed_for", "RunArtefacts", "ALL_DATASETS", "OFFLINE", "Outcome", "run", "Reproduction",
           "with_record", "STEPS", "read", "record", "record_dir", "write_outputs", "TABLE1_ROWS", "TABLE2_ROWS",
           "aggregate", "by_seed", "markdown_table"]
