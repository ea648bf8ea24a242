"""HTTP routes, one module per area; each router declares its roles in its dependencies."""
