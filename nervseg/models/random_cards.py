"""Random-weight model cards: stand-ins for benchmarks (speed does not depend on the weights'
values) and tests. Written to a folder of the caller's choosing, never to models/.
"""

from __future__ import annotations

from pathlib import Path

SMALL_SMP_KWARGS = {"encoder_depth": 4, "decoder_channels": [32, 16, 8, 8]}


def random_card(directory: Path, arch: str, classes: list[str] | None = None, model_id: str | None = None,
                size: tuple[int, int] = (64, 64), smp_kwargs: dict | None = None, preprocess: dict | None = None,
                task: str | None = None):
    """Write a seeded random-weight card + safetensors for `arch` into `directory`; returns the card.

    The card says "random weights" in its name and notes so it never poses as a trained model.
    `task` defaults to the dataset spec whose classes are `classes` ("" when none has them).
    """
    import torch

    from nervseg.data.datasets import TASKS
    from nervseg.models.cards import ARCHITECTURES, ModelCard, build, count_parameters, save_weights

    classes = list(classes or ["background", "nerve", "vessel"])
    smp_kwargs = dict(smp_kwargs or SMALL_SMP_KWARGS)
    model_id = model_id or f"random-{arch}"
    torch.manual_seed(0)
    model = build(arch, len(classes), **smp_kwargs).eval()
    directory = Path(directory)
    weights = directory / f"{model_id}.safetensors"
    sha, nbytes = save_weights(model, weights, dtype="float16")
    card = ModelCard(
        id=model_id, name=f"{ARCHITECTURES[arch].display} (random weights)", architecture=arch, classes=classes,
        encoder=ARCHITECTURES[arch].encoder, smp_kwargs=smp_kwargs, input_size=list(size),
        preprocess=dict(preprocess or {}), task=task or next((k for k, ds in TASKS.items() if list(ds.classes) == classes), ""),
        weights_file=weights.name, weights_sha256=sha, weights_bytes=nbytes, parameters=count_parameters(model),
        notes="random weights",
    )
    card.path = str(directory / f"{model_id}.json")
    card.save(Path(card.path))
    return card
