"""The parts of the microstack system, one ComponentResource per module."""
