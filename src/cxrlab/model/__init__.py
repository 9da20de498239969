"""The unified model: a torchvision backbone shared by a multi-label classifier and an FCOS detector, with
class activation map boxes for labels without box supervision; train, predict, evaluate."""

from cxrlab.model.checkpoint import load_checkpoint, load_model, save_checkpoint
from cxrlab.model.config import TrainConfig, resolve_config
from cxrlab.model.evaluate import Evaluation, evaluate, local_macro
from cxrlab.model.network import ARCHITECTURES, CxrNet, NetworkSpec
from cxrlab.model.predict import PredictResult, predict
from cxrlab.model.train import TrainResult, train

__all__ = [
    "ARCHITECTURES",
    "CxrNet",
    "Evaluation",
    "NetworkSpec",
    "PredictResult",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_checkpoint",
    "load_model",
    "local_macro",
    "predict",
    "resolve_config",
    "save_checkpoint",
    "train",
]
