"""A Unix shell on the operating system's own interfaces: fork/execvp/waitpid, pipe/dup2,
process groups and terminal control. `python -m projects.shell` (or `make shell`)."""
