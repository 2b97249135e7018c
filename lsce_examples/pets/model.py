"""ResNet34 in our own code, fastai v1's head, ImageNet weights and the frozen body.

``cnn_learner(data, models.resnet34)`` in the article does three hidden things: it loads
torchvision's ImageNet ResNet34, cuts off its pooling and classifier, and puts fastai's
head on top; ``fit`` then trains only that head and the body's BatchNorm layers. Our
ResNet34 uses torchvision's state-dict key names and shapes, so the official weights
load into it without torchvision.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

RESNET34_URL = "https://download.pytorch.org/models/resnet34-b627a593.pth"
RESNET34_PARAMETERS = 21_797_672  # torchvision's count, fc (1000 classes) included


# --8<-- [start:resnet]
class BasicBlock(nn.Module):
    """Two 3×3 convolutions and a shortcut:
    out = relu(bn2(conv2(relu(bn1(conv1 x)))) + x)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            inplanes, planes, 3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        # The shortcut must change shape too when the block halves the size or widens.
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet34(nn.Module):
    """torchvision's ``resnet34``: same modules, same names, same shapes, same init."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths, blocks = (64, 128, 256, 512), (3, 4, 6, 3)
        inplanes = 64
        for i, (planes, count) in enumerate(zip(widths, blocks, strict=True)):
            stride = 1 if i == 0 else 2
            layer = [BasicBlock(inplanes, planes, stride)]
            layer += [BasicBlock(planes, planes) for _ in range(count - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu"
                )

    def features(self) -> nn.Sequential:
        """The body fastai keeps (``create_body(..., cut=-2)``):
        everything but avgpool and fc."""
        return nn.Sequential(
            self.conv1, self.bn1, self.relu, self.maxpool,
            self.layer1, self.layer2, self.layer3, self.layer4,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features()(x)), 1))


# --8<-- [end:resnet]


# --8<-- [start:head]
class AdaptiveConcatPool2d(nn.Module):
    """fastai's pooling: max-pool and average-pool over the whole map, concatenated
    (2C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)


def fastai_head(in_features: int, num_classes: int, hidden: int = 512) -> nn.Sequential:
    """fastai v1's ``create_head(1024, K)``: BN, dropout 0.25, 512 ReLU units, BN,
    dropout 0.5."""
    head = nn.Sequential(
        AdaptiveConcatPool2d(),
        nn.BatchNorm1d(2 * in_features),
        nn.Dropout(0.25),
        nn.Linear(2 * in_features, hidden),
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(hidden),
        nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )
    # fastai's apply_init(head, kaiming_normal_): Kaiming-normal weights, zero biases.
    for module in head:
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight)
            nn.init.zeros_(module.bias)
    return head


class PetClassifier(nn.Module):
    """fastai's ``cnn_learner`` model: the ResNet34 body (``body``) and the new head
    (``head``)."""

    def __init__(self, num_classes: int, backbone: ResNet34 | None = None) -> None:
        super().__init__()
        self.body = (backbone or ResNet34()).features()
        self.head = fastai_head(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


# --8<-- [end:head]


# --8<-- [start:freeze]
def freeze_body(model: PetClassifier) -> None:
    """fastai's ``learn.freeze()``: body weights fixed,
    its BatchNorm layers still trained."""
    for module in model.body.modules():
        trainable = isinstance(module, nn.modules.batchnorm._BatchNorm)
        for parameter in module.parameters(recurse=False):
            parameter.requires_grad_(trainable)


def parameter_groups(model: PetClassifier, max_lr: float) -> list[dict]:
    """fastai's three layer groups (stem to layer2, layer3 and layer4, head) and their
    learning rates from ``max_lr=slice(3e-3)``: [max_lr/10, max_lr/10, max_lr]."""
    groups = [model.body[:6], model.body[6:], model.head]
    return [
        {
            "params": [p for p in group.parameters() if p.requires_grad],
            "lr_scale": scale,
        }
        for group, scale in zip(groups, (0.1, 0.1, 1.0), strict=True)
    ]


# --8<-- [end:freeze]


# --8<-- [start:weights]
def read_state_dict(source: str) -> dict[str, torch.Tensor]:
    """Read a state dict from a local file or an http(s) URL, never unpickling code."""
    if source.startswith(("http://", "https://")):
        try:
            # check_hash: the hex after the last "-" in the name is the
            # file's sha256 prefix.
            return torch.hub.load_state_dict_from_url(
                source, map_location="cpu", check_hash=True, weights_only=True
            )
        except (OSError, RuntimeError) as error:
            raise ValueError(
                f"--weights {source}: could not fetch the weights ({error}). "
                "Without internet, download the file elsewhere and pass its "
                "path, or use --weights none"
            ) from error
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"--weights {source}: no such file; pass a .pth file, a URL, or none "
            f"(torchvision's is {RESNET34_URL})"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # a truncated zip, a pickle error, a file that would run code: all unusable
    except Exception as error:
        raise ValueError(
            f"--weights {path}: not a readable PyTorch state dict "
            f"({type(error).__name__}: {error}). The file may be truncated or "
            "corrupted: download it again"
        ) from error
    if not isinstance(state, dict):
        raise ValueError(
            f"--weights {path}: holds a {type(state).__name__}, not a state dict"
        )
    return state


def load_imagenet_weights(model: ResNet34, source: str) -> None:
    """Load torchvision ResNet34 weights into ``model``;
    any other file is a clear error.

    Only ``num_batches_tracked`` may be missing: the 2017 files predate that buffer.
    """
    state = read_state_dict(source)
    expected = model.state_dict()
    missing = [
        k for k in expected if k not in state and not k.endswith("num_batches_tracked")
    ]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        problems = [
            f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shape", wrong),
            )
            if keys
        ]
        raise ValueError(
            f"--weights {source}: not a torchvision ResNet34 ImageNet state dict ("
            + "; ".join(problems)
            + f"). Use {RESNET34_URL} or --weights none"
        )
    model.load_state_dict(state, strict=False)


# --8<-- [end:weights]
