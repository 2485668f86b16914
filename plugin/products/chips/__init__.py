"""ML training chips: fixed-size patches with labels and train/validation/test splits, from minicube
reads. May import `stac`, `cube`, `analysis` and `products.minicubes`; no QGIS."""
