"""LightningDataModules. Each yields ``(x, y)`` batches and declares one sample's ``shape``."""
