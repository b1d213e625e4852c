"""can package."""
