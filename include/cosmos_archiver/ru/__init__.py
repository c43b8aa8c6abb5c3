"""RU governance: the budget seam every spender pays through, the controllers that pace it, and usage sources."""
