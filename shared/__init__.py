"""Code every project shares: tracking, metrics, folds, images, seeding, devices, logging."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
