"""Models: the architecture registry, model cards (models/*.json) and their weights.

`nervseg.models.available()` and `get_card` are the contract; `cards` holds them,
`card_ops` the normalisation and post-processing a card describes, `provenance` what a
model learnt from.
"""

from nervseg.models.cards import (
    ARCHITECTURES,
    Architecture,
    ModelCard,
    ModelError,
    available,
    available_with_errors,
    build,
    build_from_card,
    get_card,
    load_model,
    load_state_dict,
    read_card,
    save_weights,
)

__all__ = ["ARCHITECTURES", "Architecture", "ModelCard", "ModelError", "available", "available_with_errors", "build",
           "build_from_card", "get_card", "load_model", "load_state_dict", "read_card", "save_weights"]
