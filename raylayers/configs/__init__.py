"""Shipped configs: train_*.yaml recipes and deepspeed/zero{0,1,2,3}.json."""
