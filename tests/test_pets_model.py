"""ResNet34 with torchvision's layout (derived here from the architecture, not torchvision),
weights loading and its errors, fastai's head, the frozen body and the layer groups."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lsce_examples.pets.model import (
    RESNET34_PARAMETERS,
    PetClassifier,
    ResNet34,
    fastai_head,
    freeze_body,
    load_imagenet_weights,
    parameter_groups,
)


def bn(prefix: str, channels: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{prefix}.{name}", (channels,)) for name in ("weight", "bias")] + [
        (f"{prefix}.running_mean", (channels,)),
        (f"{prefix}.running_var", (channels,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


def torchvision_resnet34_layout() -> list[tuple[str, tuple[int, ...]]]:
    """torchvision's resnet34 state dict, from its definition: ResNet(BasicBlock, [3, 4, 6, 3])."""
    keys = [("conv1.weight", (64, 3, 7, 7)), *bn("bn1", 64)]
    inplanes = 64
    for layer, (planes, blocks) in enumerate(
        zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True), start=1
    ):
        for block in range(blocks):
            p = f"layer{layer}.{block}"
            keys += [
                (f"{p}.conv1.weight", (planes, inplanes, 3, 3)),
                *bn(f"{p}.bn1", planes),
            ]
            keys += [
                (f"{p}.conv2.weight", (planes, planes, 3, 3)),
                *bn(f"{p}.bn2", planes),
            ]
            if block == 0 and layer > 1:
                keys += [(f"{p}.downsample.0.weight", (planes, inplanes, 1, 1))]
                keys += bn(f"{p}.downsample.1", planes)
            inplanes = planes
    return keys + [("fc.weight", (1000, 512)), ("fc.bias", (1000,))]


def test_keys_and_shapes_are_torchvisions() -> None:
    state = ResNet34().state_dict()
    layout = torchvision_resnet34_layout()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == layout
    assert (
        len(state) == 218
        and sum(k.endswith("num_batches_tracked") for k in state) == 36
    )


def test_parameter_counts() -> None:
    model = ResNet34()
    assert (
        sum(p.numel() for p in model.parameters()) == RESNET34_PARAMETERS == 21_797_672
    )
    assert sum(p.numel() for p in fastai_head(512, 37).parameters()) == 546_853


def test_forward_shapes() -> None:
    model = PetClassifier(37).eval()
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 37)
    assert ResNet34().eval()(x).shape == (2, 1000)
    # fastai's head: max-pool first, then average-pool, concatenated
    features = torch.randn(2, 512, 3, 3)
    pooled = model.head[0](features)
    torch.testing.assert_close(pooled[:, :512], features.amax(dim=(2, 3)))
    torch.testing.assert_close(pooled[:, 512:], features.mean(dim=(2, 3)))


def test_head_layers_are_fastais() -> None:
    head = fastai_head(512, 37)
    kinds = [type(m).__name__ for m in head]
    assert kinds == [
        "AdaptiveConcatPool2d",
        "BatchNorm1d",
        "Dropout",
        "Linear",
        "ReLU",
        "BatchNorm1d",
        "Dropout",
        "Linear",
    ]
    assert (head[2].p, head[6].p) == (0.25, 0.5)
    assert (head[3].in_features, head[3].out_features, head[7].out_features) == (
        1024,
        512,
        37,
    )
    assert all(not m.bias.detach().any() for m in head if isinstance(m, nn.Linear))


def test_state_dict_round_trips_with_strict_loading(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = ResNet34()
    with torch.no_grad():
        for buffer in source.buffers():
            buffer.add_(
                1
            )  # running stats differ from a fresh model's, so loading is visible
    torch.save(source.state_dict(), tmp_path / "resnet34.pth")
    target = ResNet34()
    load_imagenet_weights(target, str(tmp_path / "resnet34.pth"))
    for (name, a), b in zip(
        source.state_dict().items(), target.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    strict = ResNet34()
    strict.load_state_dict(
        torch.load(tmp_path / "resnet34.pth", weights_only=True), strict=True
    )


def test_files_without_num_batches_tracked_load(tmp_path: Path) -> None:
    state = {k: v for k, v in ResNet34().state_dict().items() if "num_batches" not in k}
    torch.save(state, tmp_path / "old.pth")  # like the 2017 files
    load_imagenet_weights(ResNet34(), str(tmp_path / "old.pth"))


def test_corrupted_file_is_a_clear_error(tmp_path: Path) -> None:
    torch.save(ResNet34().state_dict(), tmp_path / "good.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes((tmp_path / "good.pth").read_bytes()[:100_000])
    with pytest.raises(
        ValueError, match=r"--weights .*truncated.pth: not a readable .* download"
    ):
        load_imagenet_weights(ResNet34(), str(truncated))
    (tmp_path / "junk.pth").write_bytes(b"<html>404 not found</html>")
    with pytest.raises(ValueError, match="not a readable PyTorch state dict"):
        load_imagenet_weights(ResNet34(), str(tmp_path / "junk.pth"))


def test_wrong_architecture_is_a_clear_error(tmp_path: Path) -> None:
    resnet18_like = {
        k: v for k, v in ResNet34().state_dict().items() if "layer3.5" not in k
    }
    torch.save(resnet18_like, tmp_path / "short.pth")
    with pytest.raises(
        ValueError, match=r"not a torchvision ResNet34 .*missing: layer3\.5"
    ):
        load_imagenet_weights(ResNet34(), str(tmp_path / "short.pth"))
    torch.save(PetClassifier(37).state_dict(), tmp_path / "ours.pth")
    with pytest.raises(ValueError, match="unexpected: body.0.weight"):
        load_imagenet_weights(ResNet34(), str(tmp_path / "ours.pth"))
    wide_fc = ResNet34(num_classes=10).state_dict()
    torch.save(wide_fc, tmp_path / "fc10.pth")
    with pytest.raises(
        ValueError, match=r"shape: fc.weight \(10, 512\) \(expected \(1000, 512\)\)"
    ):
        load_imagenet_weights(ResNet34(), str(tmp_path / "fc10.pth"))
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        load_imagenet_weights(ResNet34(), str(tmp_path / "list.pth"))


def test_missing_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--weights .*nope.pth: no such file"):
        load_imagenet_weights(ResNet34(), str(tmp_path / "nope.pth"))


def test_freeze_keeps_batchnorm_trainable_and_groups_follow_fastai() -> None:
    model = PetClassifier(37)
    freeze_body(model)
    for name, parameter in model.named_parameters():
        module = model.get_submodule(name.rsplit(".", 1)[0])
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
        assert parameter.requires_grad == (is_bn or name.startswith("head.")), name
    groups = parameter_groups(model, 3e-3)
    assert [g["lr_scale"] for g in groups] == [0.1, 0.1, 1.0]
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert ids[0].isdisjoint(ids[1]) and ids[1].isdisjoint(ids[2])
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert ids[0] | ids[1] | ids[2] == trainable
    # group 0: stem + layer1 + layer2 (fastai's split at body[6])
    assert (
        id(model.body[5][0].bn1.weight) in ids[0]
        and id(model.body[6][0].bn1.weight) in ids[1]
    )
