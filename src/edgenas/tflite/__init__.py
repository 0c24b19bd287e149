"""Graph -> int8 TFLite bytes (generated trained-like or given quantised weights), and a reader that
checks a user's model file is an int8/int16 TFLite model."""

from edgenas.tflite.reader import TensorInfo, TfliteInfo, inspect_tflite
from edgenas.tflite.weights import WEIGHTS_DESCRIPTION
from edgenas.tflite.writer import GivenWeights, graph_to_tflite

__all__ = ["WEIGHTS_DESCRIPTION", "GivenWeights", "TensorInfo", "TfliteInfo", "graph_to_tflite", "inspect_tflite"]
