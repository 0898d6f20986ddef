"""The dashboard's pages in menu order: the one list the app and its tests read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PageInfo:
    path: str  # relative to the project root
    title: str
    icon: str

    @property
    def slug(self) -> str:
        """The page's URL path (streamlit names it after the file)."""
        return Path(self.path).stem


PAGES: tuple[PageInfo, ...] = (
    PageInfo("views/home.py", "Home", ":material/home:"),
    PageInfo("views/segment.py", "Segment", ":material/image_search:"),
    PageInfo("views/compare.py", "Compare models", ":material/compare:"),
    PageInfo("views/lab.py", "Preprocessing lab", ":material/tune:"),
    PageInfo("views/metrics.py", "Ground-truth metrics", ":material/analytics:"),
    PageInfo("views/cine.py", "Cine", ":material/movie:"),
    PageInfo("views/live.py", "Live", ":material/videocam:"),
    PageInfo("views/models.py", "Models", ":material/model_training:"),
)
