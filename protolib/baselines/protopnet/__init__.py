"""ProtoPNet (Chen et al., 2019), the paper's self-explainable baseline, stage by stage.

Modules: ``model`` (network, distances; the log-similarity is :mod:`protolib.method.similarity`),
``losses`` (cross-entropy, cluster, separation, L1), ``recipe`` (hyper-parameters and schedule),
``stages`` (warm-up, joint, last layer, evaluation), ``push`` (projection onto training patches,
receptive fields), ``schedule`` (the whole run, step by step, and the model it starts from),
``stage_cache`` (a checkpoint after every step), ``analysis`` ("this looks like that",
alignment cosines), ``viz`` (figures).

>>> from protolib.baselines import protopnet
>>> run = protopnet.load_or_train("digits")            # doctest: +SKIP
>>> protopnet.evaluate(run.model, test_set).accuracy   # doctest: +SKIP
"""

from .analysis import (
    AlignmentCosines,
    Explanation,
    alignment_cosines,
    class_out_means,
    explain,
)
from .losses import (
    Coefficients,
    LossTerms,
    cluster_cost,
    l1_wrong_class,
    protopnet_loss,
    separation_cost,
)
from .model import (
    ProtoPNet,
    ProtoPNetOutput,
    build_protopnet,
    squared_distances,
)
from .push import (
    PushResult,
    ReceptiveField,
    cell_box,
    dataset_targets,
    high_activation_box,
    patches_at,
    push_prototypes,
    receptive_field,
    similarity_maps,
)
from .recipe import ProtoPNetRecipe, Step, recipe_for
from .schedule import (
    ProtoPNetRun,
    RunState,
    datasets_for,
    initial_model,
    load_or_train,
    run_schedule,
    run_step,
)
from .stage_cache import StageCache, run_label
from .stages import (
    Evaluation,
    StageResult,
    amp_dtype,
    evaluate,
    joint,
    last_layer,
    min_distances,
    set_trainable,
    warm_up,
)

__all__ = [
    "AlignmentCosines", "Explanation", "alignment_cosines", "class_out_means", "explain",
    "ProtoPNetRun", "RunState", "StageCache", "datasets_for", "initial_model", "load_or_train", "run_label", "run_schedule",
    "run_step",
    "Coefficients", "LossTerms", "cluster_cost", "l1_wrong_class", "protopnet_loss", "separation_cost",
    "ProtoPNet", "ProtoPNetOutput", "build_protopnet", "squared_distances",
    "PushResult", "ReceptiveField", "cell_box", "dataset_targets", "high_activation_box", "patches_at", "push_prototypes",
    "receptive_field", "similarity_maps",
    "ProtoPNetRecipe", "Step", "recipe_for",
    "Evaluation", "StageResult", "amp_dtype", "evaluate", "joint", "last_layer", "min_distances", "set_trainable", "warm_up",
]
