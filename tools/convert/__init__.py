"""Build-time model converters (may import paddle; never imported by the visionpack package)."""
