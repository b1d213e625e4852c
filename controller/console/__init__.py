"""The operator console: its protocol, the gateway and the control desk (issue 14)."""
