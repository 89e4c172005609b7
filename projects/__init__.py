"""The four portfolio projects; each is a package with a Hydra `train` entry point."""
