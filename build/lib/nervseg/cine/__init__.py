"""Cine clips: one pipeline from frames to masks and overlays, used by the Cine page, the CLI and box agreement.

    python -m nervseg.cine --help
"""
