"""Cross-validation: train and score each fold, then summarise into the cards.

    python -m nervseg.cv --help
"""
