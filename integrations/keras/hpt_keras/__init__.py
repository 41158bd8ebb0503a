"""Keras integration for hpt: the `HptCallback` arrives with the Keras issue; nothing here yet."""
