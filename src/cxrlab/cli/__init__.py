"""The typer app: thin commands over the library."""
