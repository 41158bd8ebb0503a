"""PyTorch Lightning integration for hpt: the `HptCallback` arrives with the Lightning issue; nothing here yet."""
