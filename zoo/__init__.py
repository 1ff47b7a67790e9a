"""A zoo of binary neural networks built with Larq on Keras 2 (tf-keras).

    from zoo import BinaryDenseNet28, build_model, list_models
    model = build_model("BinaryDenseNet28", input_shape=(32, 32, 3), num_classes=10)
"""

from zoo.keras_setup import use_legacy_keras

use_legacy_keras()

from zoo.registry import (  # noqa: E402
    ModelRecord,
    Weights,
    WeightsFile,
    build_float_twin,
    build_model,
    entry_point,
    get_record,
    list_models,
    weights_file,
)
from zoo.models import densenet, mobilenet, ubnas  # noqa: E402,F401  (register models)
from zoo.profile import profile  # noqa: E402

BinaryDenseNet28 = entry_point("BinaryDenseNet28")
BinaryDenseNet37 = entry_point("BinaryDenseNet37")
BinaryDenseNet37Dilated = entry_point("BinaryDenseNet37Dilated")
BinaryDenseNet45 = entry_point("BinaryDenseNet45")
BinaryMobileNet = entry_point("BinaryMobileNet")
UBNAS = ubnas.UBNAS

__all__ = [
    "BinaryDenseNet28",
    "BinaryDenseNet37",
    "BinaryDenseNet37Dilated",
    "BinaryDenseNet45",
    "BinaryMobileNet",
    "ModelRecord",
    "Weights",
    "UBNAS",
    "WeightsFile",
    "build_float_twin",
    "build_model",
    "get_record",
    "list_models",
    "profile",
    "weights_file",
]
