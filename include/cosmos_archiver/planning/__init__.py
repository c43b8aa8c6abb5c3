"""Planning: which slices a run archives (due_slices.select_due_slices), and how long and how much the whole archive
takes (capacity.estimate_capacity)."""
