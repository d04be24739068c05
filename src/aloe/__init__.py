"""aloe: post-train a VLA policy on your own robot with action-level off-policy evaluation."""

__version__ = "0.1.0"
