"""Runtime catalog and the bootstraps that run inside execution environments."""
