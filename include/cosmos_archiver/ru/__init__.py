"""RU governance: the budget seam every spender pays through (budget), the controllers that pace it (settings,
token_bucket, statistics, static_budget, adaptive_budget), ADF copy sizing (adf_sizing), usage sources (usage), the
gate's verdict (quiet_gate), and the per-run settings that build them (governance)."""
