"""The platform seam: one place turns a workload into containers or into Swarm services."""

from components.platform.base import Deployment, NetworkSpec, Platform

__all__ = ["Deployment", "NetworkSpec", "Platform"]
