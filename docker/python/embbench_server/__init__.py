"""embbench's Python server: one HTTP layer (docker/CONTRACT.md) over swappable inference backends."""
