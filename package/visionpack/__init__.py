"""visionpack: an offline, licensed deployment package for computer-vision inference (docs/design.md "Architecture")."""
