"""Start the dashboard warm: heavy imports done and models loading before the first visitor.

    python -m dashboard.serve [streamlit run options]     (what `make app` runs)

`streamlit run streamlit_app.py` works too, but then the first visitor's page pays for
importing pandas, scipy and plotly (about 1 s here) and for loading the models. This imports
them in the server process, which the sessions' script runs share, and starts a thread that
prepares the first pages' work (gallery thumbnails, models loaded and run once through
`nervseg.inference.pool`, the opening model's group first) before handing over to Streamlit's
own command line.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # the project root
log = logging.getLogger("nervseg.serve")
# What the pages import on their first run, slowest first (pandas ~0.45 s, scipy.ndimage ~0.3 s here).
PRELOAD = ("pandas", "scipy.ndimage", "plotly.graph_objects", "nervseg.evaluate.batch", "nervseg.cine.boxes", "nervseg.cine.view",
           "nervseg.evaluate.comparison", "nervseg.metrics", "nervseg.evaluate.presence", "nervseg.evaluate.report", "nervseg.cine",
           "nervseg.display.viz")


def preload() -> threading.Thread | None:
    """Import what the pages import, set the thread count, and start the warm-up thread."""
    for name in PRELOAD:
        importlib.import_module(name)
    from nervseg.inference.segmenter import configure_threads
    from nervseg.models import cards as models
    from nervseg.models import provenance

    _skip_repl_check()
    configure_threads()  # the app's one setting ($NERVSEG_THREADS or the cores), before any session exists
    try:
        cards = models.available()
    except Exception as e:  # noqa: BLE001 - the pages show card problems; the server still starts
        log.warning("no model warm-up: %s", e)
        cards = []
    first = provenance.default_card(cards)
    group = sorted((c for c in cards if first and c.task == first.task), key=lambda c: (c.id != first.id, c.id))
    others = [c for c in cards if c not in group]
    thread = threading.Thread(target=warm_up, args=(group, others), name="nervseg-warm", daemon=True)
    thread.start()
    return thread


def _skip_repl_check() -> None:
    """Streamlit checks once per process, on the first element sent, whether it runs in a REPL, by walking
    the whole stack with `inspect.stack()` (~0.15 s of the first visitor's page here). Under dashboard.serve
    it never does, so the check is marked done (a private flag: absent in another Streamlit, no harm)."""
    from streamlit import delta_generator

    if hasattr(delta_generator, "_use_warning_has_been_displayed"):
        delta_generator._use_warning_has_been_displayed = True


def warm_up(group: list, others: list, pause_s: float = 10.0) -> None:
    """What the first visitor's pages need, in the order they need it: the opening model and its Dice on
    each bundled sample (Home's typical case), the gallery thumbnails and the shared-data sample list, the rest of its group (Compare) and one plotly
    figure (plotly loads its validators on the first); then, after `pause_s` so as not to compete
    with the first pages for the CPU, the other groups' models."""
    import numpy as np

    from nervseg.data import samples
    from nervseg.display import viz
    from nervseg.inference import pool as model_pool

    model_pool.warm_now(group[:1])
    try:
        if group:
            from dashboard import demo

            demo.default_sample_dice(group[0])  # Home's typical case: the opening model on every bundled sample
    except Exception as e:  # noqa: BLE001 - warm-up only; Home computes it (and shows any problem) itself
        log.warning("typical-case warm-up failed: %s", e)
    try:
        for s in samples.bundled():
            samples.thumbnail_png(s.stem)
        samples.local_samples()
    except Exception as e:  # noqa: BLE001 - warm-up only; Home shows the problem itself
        log.warning("sample warm-up failed: %s", e)
    model_pool.warm_now(group[1:])
    viz.image_figure(np.zeros((8, 8, 3), np.uint8)).to_json()
    time.sleep(pause_s)
    model_pool.warm_now(others)


def main() -> None:
    sys.path.insert(0, str(HERE))
    preload()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(HERE / "streamlit_app.py"), *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
