"""Multi-reader labels: consensus, agreement and exports."""
