"""serial package."""
