"""Tables, plots and figures a person would rather see than read."""
