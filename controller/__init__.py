"""The brain of QIKI: owns time, runs the state machine, controller, allocator and safety."""
