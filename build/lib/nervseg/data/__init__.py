"""Data: what each dataset is (datasets.json), how images pair with masks, splits, folds, bundled samples, training arrays."""
