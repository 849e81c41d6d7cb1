"""Model execution: the Engine protocol and its factory, the one module per backend, and the yml-driven
pre/post-processing."""
