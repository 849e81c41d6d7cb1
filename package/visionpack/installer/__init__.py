"""install.py: the operator's commands, releases and their switch, the process/docker runtimes, venvs,
environment checks."""
