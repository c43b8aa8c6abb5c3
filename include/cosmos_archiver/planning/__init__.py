"""Planning: which slices are due in a run (due_slices), and how long and how much the whole archive takes
(capacity)."""
