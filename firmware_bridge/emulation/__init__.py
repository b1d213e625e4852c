"""Emulated device firmware and the simulated world, stepped by the caller's clock."""
