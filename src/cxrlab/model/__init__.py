"""The unified model: a torchvision backbone shared by a multi-label classifier and an FCOS detector, with
class activation map boxes for labels without box supervision; train, predict, evaluate."""
