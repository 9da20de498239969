"""Labels from free-text radiology reports: mentions, negation, uncertainty."""
