"""Sharing policy, pure and I/O-free: subscription plans, masks and row filters."""
